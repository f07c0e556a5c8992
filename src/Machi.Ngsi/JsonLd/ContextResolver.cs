using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.JsonLd;

/// <summary>Turns the @context a request carries into the <see cref="LdContext"/> that expands and compacts its terms.</summary>
public interface IContextResolver
{
    /// <summary>
    /// The context for an "@context" member of a body: null (core only), a URL string, an object or an array.
    /// Invalid contexts throw NgsiException (BadRequestData); unreachable remote ones LdContextNotAvailable.
    /// </summary>
    ValueTask<LdContext> ResolveAsync(JsonNode? contextValue, CancellationToken cancellationToken);

    /// <summary>The context for the URL of a JSON-LD Link header (see <see cref="JsonLdLink"/>).</summary>
    ValueTask<LdContext> ResolveLinkAsync(string url, CancellationToken cancellationToken);
}

/// <summary>
/// Resolves contexts through the <see cref="ContextRegistry"/> and keeps the results by their JSON text (or Link
/// URL), so a request repeating a context costs one dictionary lookup. Results built on a context that is later
/// deleted or reloaded are dropped.
/// </summary>
public sealed class ContextResolver : IContextResolver
{
    private readonly ContextRegistry _registry;
    private readonly TimeProvider _time;
    private readonly BoundedCache<string, LdContext> _resolved;
    private int _seenGeneration;

    public ContextResolver(ContextRegistry registry, LdContextOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        _registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _resolved = new BoundedCache<string, LdContext>(Math.Max(1, options.ResolvedContextCacheSize));
        _seenGeneration = registry.Generation;
    }

    public ValueTask<LdContext> ResolveAsync(JsonNode? contextValue, CancellationToken cancellationToken)
    {
        if (contextValue is null)
        {
            return ValueTask.FromResult(LdContext.Core);
        }

        switch (contextValue.GetValueKind())
        {
            case JsonValueKind.String:
                return ResolveLinkAsync(contextValue.GetValue<string>(), cancellationToken);
            case JsonValueKind.Object or JsonValueKind.Array:
                var key = contextValue.ToJsonString();
                return TryGetResolved(key, out var context)
                    ? ValueTask.FromResult(context)
                    : ResolveNewAsync(key, JsonSerializer.Deserialize<JsonElement>(key), cancellationToken);
            case JsonValueKind.Null:
                return ValueTask.FromResult(LdContext.Core);
            default:
                throw NgsiException.BadData("The @context must be a URL string, an object or an array");
        }
    }

    public ValueTask<LdContext> ResolveLinkAsync(string url, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (CoreContext.IsCoreUrl(url))
        {
            return ValueTask.FromResult(LdContext.Core);
        }

        if (TryGetResolved(url, out var context))
        {
            return ValueTask.FromResult(context);
        }

        LdContextProcessor.ParseRemoteUrl(url, source: null);
        return ResolveNewAsync(url, JsonSerializer.SerializeToElement(url), cancellationToken);
    }

    private bool TryGetResolved(string key, out LdContext context)
    {
        var generation = _registry.Generation;
        if (generation != Volatile.Read(ref _seenGeneration))
        {
            _resolved.Clear();
            Volatile.Write(ref _seenGeneration, generation);
        }

        if (!_resolved.TryGet(key, out context))
        {
            return false;
        }

        if (context.Usages.Length > 0)
        {
            var now = _time.GetUtcNow();
            foreach (var usage in context.Usages)
            {
                usage.Touch(now);
            }
        }

        return true;
    }

    private async ValueTask<LdContext> ResolveNewAsync(string key, JsonElement value, CancellationToken cancellationToken)
    {
        var generation = _registry.Generation;
        var processed = await LdContextProcessor.ProcessAsync(value, _registry, cancellationToken);
        var context = IsCoreOnly(value) ? LdContext.Core : new LdContext(processed.Terms, value, processed.Usages);
        if (_registry.Generation == generation)
        {
            _resolved.Set(key, context);
        }

        return context;
    }

    private static bool IsCoreOnly(JsonElement value) =>
        value.ValueKind == JsonValueKind.Array
        && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String && CoreContext.IsCoreUrl(v.GetString()!));
}
