using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

/// <summary>A loader serving documents from memory and counting what it was asked for.</summary>
internal sealed class FakeLoader : IContextDocumentLoader
{
    private readonly ConcurrentDictionary<string, string> _documents = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _calls = new(StringComparer.Ordinal);

    public int TotalCalls => _calls.Values.Sum();

    public TimeSpan Delay { get; set; }

    public FakeLoader Serve(string url, string document)
    {
        _documents[url] = document;
        return this;
    }

    public FakeLoader ServeContext(string url, string contextJson) => Serve(url, $"{{\"@context\": {contextJson}}}");

    public int CallsFor(string url) => _calls.GetValueOrDefault(url);

    public async ValueTask<ReadOnlyMemory<byte>> LoadAsync(Uri url, CancellationToken cancellationToken)
    {
        var key = url.OriginalString;
        _calls.AddOrUpdate(key, 1, (_, n) => n + 1);
        if (Delay > TimeSpan.Zero)
        {
            await Task.Delay(Delay, cancellationToken);
        }

        return _documents.TryGetValue(key, out var document)
            ? Encoding.UTF8.GetBytes(document)
            : throw new NgsiException(NgsiErrorType.LdContextNotAvailable, $"{key}: 404 Not Found");
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;
}

/// <summary>A registry and resolver wired the way the broker wires them, over a fake loader.</summary>
internal sealed class ContextKit
{
    public const string BaseUrl = "http://broker.example:1026";

    public ContextKit(IHostedContextStore? store = null, LdContextOptions? options = null)
    {
        Store = store ?? new InMemoryHostedContextStore();
        Options = options ?? new LdContextOptions();
        var ids = 0;
        Registry = new ContextRegistry(Store, Loader, Options, Clock, () => $"hosted-{++ids}");
        Resolver = new ContextResolver(Registry, Options, Clock);
    }

    public FakeLoader Loader { get; } = new();

    public ManualClock Clock { get; } = new(new DateTimeOffset(2026, 4, 1, 9, 0, 0, TimeSpan.Zero));

    public IHostedContextStore Store { get; }

    public LdContextOptions Options { get; }

    public ContextRegistry Registry { get; }

    public ContextResolver Resolver { get; }

    public LdContext Resolve(string contextJson) =>
        Resolver.ResolveAsync(JsonNode.Parse(contextJson), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public Task<LdContext> ResolveAsync(string contextJson) =>
        Resolver.ResolveAsync(JsonNode.Parse(contextJson), CancellationToken.None).AsTask();

    public Task<LdContext> ResolveLinkAsync(string url) =>
        Resolver.ResolveLinkAsync(url, CancellationToken.None).AsTask();
}
