namespace Machi.Broker;

/// <summary>Broker settings, bound from the "Broker" configuration section (env: Machi__Broker__…).</summary>
public sealed class BrokerOptions
{
    /// <summary>Directory holding the embedded SQLite database (machi.db) and other state.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>
    /// A PostgreSQL (15+, with PostGIS) connection string, e.g. "Host=db;Database=machi;Username=machi". When set,
    /// everything the broker keeps lives there (several nodes may share it) and the data directory holds no database;
    /// empty: the embedded SQLite file in <see cref="DataDirectory"/>.
    /// </summary>
    public string? Database { get; set; }

    /// <summary>True when <see cref="Database"/> names a PostgreSQL server.</summary>
    public bool UsesPostgres => !string.IsNullOrWhiteSpace(Database);

    /// <summary>Largest accepted request body; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Largest page size a query may ask for with limit=; more is TooManyResults.</summary>
    public int MaxLimit { get; set; } = 1000;

    /// <summary>Page size when a query gives no limit= (cut to <see cref="MaxLimit"/> when larger).</summary>
    public int DefaultLimit { get; set; } = 20;

    /// <summary>Most entities an entity map (a query with entityMap=true) records; the rest of a larger result is not in it.</summary>
    public int EntityMapMaxEntities { get; set; } = 10_000;

    /// <summary>How long an entity map is kept unless its maker changes expiresAt.</summary>
    public TimeSpan EntityMapLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How long committed changes stay in the change log for stream clients to resume from (Last-Event-ID). Changes a
    /// consumer (subscriptions) has not processed are kept however old they are.
    /// </summary>
    public TimeSpan ChangeRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How often the change log is pruned.</summary>
    public TimeSpan ChangePruneInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Comment line sent on an idle event stream so proxies and browsers keep it open.</summary>
    public TimeSpan StreamHeartbeat { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Changes buffered per stream client; a client that falls further behind is disconnected (it resumes with Last-Event-ID).</summary>
    public int StreamClientBuffer { get; set; } = 1024;

    /// <summary>
    /// With at least <see cref="StreamCoalesceClients"/> stream clients connected, changes are handed to them at most
    /// this often, several at a time: each client then wakes and writes to its socket once per interval rather than
    /// once per change (5,000 map viewers × 50 changes/s is 250,000 wakeups and socket writes a second otherwise).
    /// </summary>
    public TimeSpan StreamCoalesce { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How many stream clients make the feed coalesce changes (fewer get each change at once).</summary>
    public int StreamCoalesceClients { get; set; } = 100;

    /// <summary>
    /// How long the temporal history keeps instances, per tenant and entity type (e.g. snowplow positions 30 days).
    /// Without a rule that matches, history is kept for ever; a rule for a tenant beats one for every tenant; an
    /// entity with several types keeps the longest (and everything when one of its types has no rule).
    /// </summary>
    public List<HistoryRetentionRule> HistoryRetention { get; set; } = [];

    /// <summary>How often instances past their retention are deleted from the history.</summary>
    public TimeSpan HistoryCompactionInterval { get; set; } = TimeSpan.FromHours(1);
}

/// <summary>One retention rule of the temporal history (Broker:HistoryRetention:N).</summary>
public sealed class HistoryRetentionRule
{
    /// <summary>The entity type: a short name (expanded with the core @context) or a full IRI.</summary>
    public string Type { get; set; } = string.Empty;

    /// <summary>The tenant (NGSILD-Tenant) the rule is for; null: every tenant.</summary>
    public string? Tenant { get; set; }

    /// <summary>How long instances are kept, counted from their observedAt (or modifiedAt when they have none).</summary>
    public TimeSpan Keep { get; set; }
}
