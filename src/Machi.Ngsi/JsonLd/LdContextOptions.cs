namespace Machi.Ngsi.JsonLd;

/// <summary>JSON-LD @context settings, bound by the broker from its configuration (e.g. "Broker:JsonLd").</summary>
public sealed class LdContextOptions
{
    /// <summary>How long fetching one remote @context document may take.</summary>
    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest remote @context document accepted; reading stops past it.</summary>
    public long MaxDocumentBytes { get; set; } = 1024 * 1024;

    /// <summary>How many resolved contexts (by their JSON text or Link URL) are kept ready.</summary>
    public int ResolvedContextCacheSize { get; set; } = 1000;

    /// <summary>How many fetched remote documents (the "Cached" kind) are kept; the least recently used go first.</summary>
    public int MaxCachedDocuments { get; set; } = 1000;
}
