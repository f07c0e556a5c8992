using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// Every @context the broker keeps, behind the /jsonldContexts endpoints (NGSI-LD clause 5.13): contexts clients
/// host here, contexts created implicitly for Link headers (both persisted through
/// <see cref="IHostedContextStore"/>), and remote documents fetched once and cached in memory. It is also where
/// the context processor dereferences URLs: our own hosted URLs are answered locally, on any host name, and
/// concurrent requests for the same remote URL share one fetch.
/// </summary>
public sealed partial class ContextRegistry : IRemoteContextSource
{
    /// <summary>The path hosted contexts are served under: <c>{baseUrl}/ngsi-ld/v1/jsonldContexts/{localId}</c>.</summary>
    public const string ContextsPath = "/ngsi-ld/v1/jsonldContexts/";

    private const string CoreExtraInfo =
        "Built into the broker: every ngsi-ld-core-context URL version resolves to it without a fetch";

    private readonly IHostedContextStore _store;
    private readonly IContextDocumentLoader _loader;
    private readonly LdContextOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<string> _newLocalId;
    private readonly DateTimeOffset _startedAt;
    private readonly ConcurrentDictionary<string, StoredContext> _hosted = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StoredContext> _cachedByUrl = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Task<StoredContext>>> _fetches = new(StringComparer.Ordinal);
    private readonly Lock _loadLock = new();
    private Task? _loading;
    private int _generation;

    /// <param name="store">Where hosted and implicitly created contexts are persisted.</param>
    /// <param name="loader">Fetches remote documents.</param>
    /// <param name="options">Fetch and cache limits.</param>
    /// <param name="timeProvider">The clock for createdAt and lastUsage.</param>
    /// <param name="newLocalId">Mints local identifiers for hosted contexts (random GUIDs by default).</param>
    public ContextRegistry(
        IHostedContextStore store,
        IContextDocumentLoader loader,
        LdContextOptions options,
        TimeProvider timeProvider,
        Func<string>? newLocalId = null)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _loader = loader ?? throw new ArgumentNullException(nameof(loader));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _time = timeProvider;
        _newLocalId = newLocalId ?? (static () => Guid.NewGuid().ToString("N"));
        _startedAt = timeProvider.GetUtcNow();
    }

    /// <summary>Changes whenever a context is deleted or reloaded, so resolved contexts built on it are dropped.</summary>
    internal int Generation => Volatile.Read(ref _generation);

    /// <summary>The URL this broker serves a hosted context at.</summary>
    public static string UrlOf(string localId, string baseUrl)
    {
        ArgumentNullException.ThrowIfNull(localId);
        ArgumentNullException.ThrowIfNull(baseUrl);
        return string.Concat(baseUrl.TrimEnd('/'), ContextsPath, Uri.EscapeDataString(localId));
    }

    /// <summary>Reads the <c>kind</c> query parameter: exactly Hosted, Cached or ImplicitlyCreated.</summary>
    public static bool TryParseKind(string? value, out ContextKind kind)
    {
        switch (value)
        {
            case nameof(ContextKind.Hosted):
                kind = ContextKind.Hosted;
                return true;
            case nameof(ContextKind.Cached):
                kind = ContextKind.Cached;
                return true;
            case nameof(ContextKind.ImplicitlyCreated):
                kind = ContextKind.ImplicitlyCreated;
                return true;
            default:
                kind = default;
                return false;
        }
    }

    /// <summary>
    /// POST /jsonldContexts: hosts the @context of <paramref name="body"/> (<c>{"@context": …}</c>) under a new
    /// local identifier. The context is processed first, so an invalid one is rejected and the remote contexts it
    /// references are fetched (and cached).
    /// </summary>
    public async ValueTask<ContextEntry> AddHostedAsync(JsonNode? body, string baseUrl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (body is not JsonObject document || !document.TryGetPropertyValue("@context", out var context))
        {
            throw NgsiException.Invalid("The body must be a JSON object with an \"@context\" member");
        }

        if (context is null || context.GetValueKind() is not (JsonValueKind.String or JsonValueKind.Object
                or JsonValueKind.Array))
        {
            throw NgsiException.BadData("The \"@context\" member must be a URL string, an object or an array");
        }

        var value = JsonSerializer.Deserialize<JsonElement>(context.ToJsonString());
        await LdContextProcessor.ProcessAsync(value, this, cancellationToken);
        await EnsureLoadedAsync(cancellationToken);
        var record = new HostedContextRecord(
            _newLocalId(), DocumentJsonOf(value.GetRawText()), ContextKind.Hosted, _time.GetUtcNow());
        await _store.PutAsync(record, cancellationToken);
        var stored = StoredContext.From(record);
        _hosted[record.LocalId] = stored;
        return EntryOf(stored, baseUrl);
    }

    /// <summary>
    /// The URL a Link header gives for <paramref name="context"/> (when answering application/json): the core
    /// context URL, the client's own URL when its context is a single one, else the URL of an implicitly created
    /// copy hosted here.
    /// </summary>
    public async ValueTask<string> GetLinkUrlAsync(LdContext context, string baseUrl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (context.IsCore)
        {
            return CoreContext.Url;
        }

        if (context.SingleUrl is { } url)
        {
            return url;
        }

        return UrlOf(await HostImplicitlyAsync(context, cancellationToken), baseUrl);
    }

    /// <summary>
    /// Hosts an inline or compound @context as ImplicitlyCreated and gives its local identifier. The identifier
    /// is a hash of the context's JSON text, so the same context always gets the same one.
    /// </summary>
    public async ValueTask<string> HostImplicitlyAsync(LdContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var valueJson = context.ValueJson
            ?? throw new ArgumentException("The core context is not hosted implicitly", nameof(context));
        var localId = Sha256Hex(valueJson);
        await EnsureLoadedAsync(cancellationToken);
        if (_hosted.ContainsKey(localId))
        {
            return localId;
        }

        var record = new HostedContextRecord(
            localId, DocumentJsonOf(valueJson), ContextKind.ImplicitlyCreated, _time.GetUtcNow());
        await _store.PutAsync(record, cancellationToken);
        _hosted.TryAdd(localId, StoredContext.From(record));
        return localId;
    }

    /// <summary>GET /jsonldContexts: every context the broker keeps, or those of one kind; the core first, then oldest first.</summary>
    public async ValueTask<IReadOnlyList<ContextEntry>> ListAsync(
        ContextKind? kind,
        string baseUrl,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        await EnsureLoadedAsync(cancellationToken);
        var entries = _cachedByUrl.Values.Concat(_hosted.Values)
            .Where(c => kind is null || c.Kind == kind)
            .Select(c => EntryOf(c, baseUrl))
            .ToList();
        entries.Sort(static (a, b) => a.CreatedAt != b.CreatedAt
            ? a.CreatedAt.CompareTo(b.CreatedAt)
            : string.CompareOrdinal(a.LocalId, b.LocalId));
        if (kind is null or ContextKind.Cached)
        {
            entries.Insert(0, CoreEntry());
        }

        return entries;
    }

    /// <summary>GET /jsonldContexts/{id}: the context with that local identifier (or, for Cached ones, URL).</summary>
    public async ValueTask<ContextEntry> GetAsync(string id, string baseUrl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (IsCore(id))
        {
            return CoreEntry();
        }

        await EnsureLoadedAsync(cancellationToken);
        var stored = _hosted.GetValueOrDefault(id) ?? FindCached(id) ?? throw NotFound(id);
        return EntryOf(stored, baseUrl);
    }

    /// <summary>
    /// DELETE /jsonldContexts/{id}: deletes a Hosted or ImplicitlyCreated context, or evicts a Cached one; with
    /// <paramref name="reload"/>, fetches a Cached context again instead (keeping the old copy if that fails).
    /// The core context can be neither deleted nor reloaded.
    /// </summary>
    public async ValueTask DeleteAsync(string id, bool reload, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (IsCore(id))
        {
            throw NgsiException.BadData("The NGSI-LD core @context is built into the broker and cannot be "
                + (reload ? "reloaded" : "deleted"));
        }

        await EnsureLoadedAsync(cancellationToken);
        if (_hosted.TryGetValue(id, out var hosted))
        {
            if (reload)
            {
                throw NgsiException.BadData(
                    $"Only Cached @contexts can be reloaded; '{id}' is {hosted.Kind} and has no origin to fetch from");
            }

            await _store.DeleteAsync(id, cancellationToken);
            _hosted.TryRemove(id, out _);
            Interlocked.Increment(ref _generation);
            return;
        }

        var cached = FindCached(id) ?? throw NotFound(id);
        if (reload)
        {
            var fresh = await FetchAsync(cached.Url);
            _cachedByUrl[cached.Url] = fresh;
        }
        else
        {
            _cachedByUrl.TryRemove(cached.Url, out _);
        }

        Interlocked.Increment(ref _generation);
    }

    async ValueTask<RemoteContext> IRemoteContextSource.DereferenceAsync(
        string url,
        CancellationToken cancellationToken)
    {
        if (TryGetHostedLocalId(url, out var localId))
        {
            await EnsureLoadedAsync(cancellationToken);
            if (_hosted.TryGetValue(localId, out var hosted))
            {
                hosted.Usage.Touch(_time.GetUtcNow());
                return new RemoteContext(hosted.Context, hosted.Usage);
            }
        }

        var cached = _cachedByUrl.GetValueOrDefault(url) ?? await FetchOnceAsync(url, cancellationToken);
        cached.Usage.Touch(_time.GetUtcNow());
        return new RemoteContext(cached.Context, cached.Usage);
    }

    /// <summary>Concurrent requests for one URL share a single fetch; a caller giving up does not cancel it.</summary>
    private Task<StoredContext> FetchOnceAsync(string url, CancellationToken cancellationToken)
    {
        var fetch = _fetches.GetOrAdd(url, u => new Lazy<Task<StoredContext>>(() => FetchAndCacheAsync(u)));
        return fetch.Value.WaitAsync(cancellationToken);
    }

    private async Task<StoredContext> FetchAndCacheAsync(string url)
    {
        try
        {
            var fetched = await FetchAsync(url);
            _cachedByUrl[url] = fetched;
            EvictCachedDocuments();
            return fetched;
        }
        finally
        {
            _fetches.TryRemove(url, out _);
        }
    }

    private async Task<StoredContext> FetchAsync(string url)
    {
        ReadOnlyMemory<byte> content;
        try
        {
            // Shared by every waiting request, so bounded by the loader's own timeout rather than one caller's.
            content = await _loader.LoadAsync(new Uri(url, UriKind.Absolute), CancellationToken.None);
        }
        catch (Exception e) when (e is not NgsiException)
        {
            throw NotAvailable(url, e.Message);
        }

        JsonElement document;
        try
        {
            document = JsonSerializer.Deserialize<JsonElement>(content.Span);
        }
        catch (JsonException)
        {
            throw NotAvailable(url, "the document is not valid JSON");
        }

        if (document.ValueKind != JsonValueKind.Object || !document.TryGetProperty("@context", out var context))
        {
            throw NotAvailable(url, "the document is not a JSON object with an \"@context\" member");
        }

        return new StoredContext(
            url, Sha256Hex(url), ContextKind.Cached, _time.GetUtcNow(), Encoding.UTF8.GetString(content.Span), context);
    }

    private void EvictCachedDocuments()
    {
        var excess = _cachedByUrl.Count - _options.MaxCachedDocuments;
        if (excess <= 0)
        {
            return;
        }

        foreach (var stale in _cachedByUrl.Values.OrderBy(c => c.Usage.LastUsage ?? c.CreatedAt).Take(excess).ToList())
        {
            _cachedByUrl.TryRemove(stale.Url, out _);
        }
    }

    /// <summary>Hosted contexts are read from the store once, on first use; a failed read is retried next time.</summary>
    private Task EnsureLoadedAsync(CancellationToken cancellationToken)
    {
        var loading = Volatile.Read(ref _loading);
        if (loading is { IsCompletedSuccessfully: true })
        {
            return Task.CompletedTask;
        }

        lock (_loadLock)
        {
            if (_loading is null || _loading.IsFaulted || _loading.IsCanceled)
            {
                _loading = LoadHostedAsync();
            }

            loading = _loading;
        }

        return loading.WaitAsync(cancellationToken);
    }

    private async Task LoadHostedAsync()
    {
        foreach (var record in await _store.ListAsync(CancellationToken.None))
        {
            _hosted.TryAdd(record.LocalId, StoredContext.From(record));
        }
    }

    private StoredContext? FindCached(string id) =>
        _cachedByUrl.GetValueOrDefault(id) ?? _cachedByUrl.Values.FirstOrDefault(c => c.LocalId == id);

    private ContextEntry CoreEntry() => new(
        CoreContext.Url, CoreContext.LocalId, ContextKind.Cached, _startedAt, null, null, CoreContext.DocumentJson,
        CoreExtraInfo);

    private static ContextEntry EntryOf(StoredContext stored, string baseUrl)
    {
        var isCached = stored.Kind == ContextKind.Cached;
        return new ContextEntry(
            isCached ? stored.Url : UrlOf(stored.LocalId, baseUrl),
            stored.LocalId,
            stored.Kind,
            stored.CreatedAt,
            isCached ? stored.Usage.LastUsage : null,
            isCached ? stored.Usage.Hits : null,
            stored.DocumentJson);
    }

    private static bool IsCore(string id) => id == CoreContext.LocalId || CoreContext.IsCoreUrl(id);

    private static bool TryGetHostedLocalId(string url, out string localId)
    {
        localId = "";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            return false;
        }

        var match = HostedPathPattern().Match(uri.AbsolutePath);
        if (!match.Success)
        {
            return false;
        }

        localId = Uri.UnescapeDataString(match.Groups[1].Value);
        return true;
    }

    private static string DocumentJsonOf(string contextJson) => string.Concat("{\"@context\":", contextJson, "}");

    private static string Sha256Hex(string text)
    {
        var length = Encoding.UTF8.GetByteCount(text);
        var bytes = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(bytes.AsSpan(0, Encoding.UTF8.GetBytes(text, bytes)), hash);
            return Convert.ToHexStringLower(hash);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private static NgsiException NotFound(string id) =>
        NgsiException.NotFound($"No @context is kept under the local identifier '{id}'");

    private static NgsiException NotAvailable(string url, string reason) =>
        new(NgsiErrorType.LdContextNotAvailable, $"The @context at '{url}' could not be retrieved: {reason}");

    [GeneratedRegex("^/ngsi-ld/v1/jsonldContexts/([^/]+)$", RegexOptions.CultureInvariant)]
    private static partial Regex HostedPathPattern();

    /// <summary>A kept context: its document text, its parsed @context and how it is being used.</summary>
    private sealed class StoredContext(
        string url,
        string localId,
        ContextKind kind,
        DateTimeOffset createdAt,
        string documentJson,
        JsonElement context)
    {
        /// <summary>The original URL (Cached); empty for contexts hosted here.</summary>
        public string Url { get; } = url;

        public string LocalId { get; } = localId;

        public ContextKind Kind { get; } = kind;

        public DateTimeOffset CreatedAt { get; } = createdAt;

        public string DocumentJson { get; } = documentJson;

        public JsonElement Context { get; } = context;

        public ContextUsage Usage { get; } = new();

        public static StoredContext From(HostedContextRecord record)
        {
            JsonElement document;
            try
            {
                document = JsonSerializer.Deserialize<JsonElement>(record.Json);
            }
            catch (JsonException e)
            {
                throw new InvalidOperationException($"The stored @context '{record.LocalId}' is not valid JSON", e);
            }

            if (document.ValueKind != JsonValueKind.Object || !document.TryGetProperty("@context", out var context))
            {
                throw new InvalidOperationException(
                    $"The stored @context '{record.LocalId}' is not a JSON object with an \"@context\" member");
            }

            return new StoredContext("", record.LocalId, record.Kind, record.CreatedAt, record.Json, context);
        }
    }
}
