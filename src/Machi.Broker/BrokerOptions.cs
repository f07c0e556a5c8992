namespace Machi.Broker;

/// <summary>Broker settings, bound from the "Broker" configuration section (env: Machi__Broker__…).</summary>
public sealed class BrokerOptions
{
    /// <summary>Directory holding the embedded SQLite database (machi.db) and other state.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Largest accepted request body; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Largest page size a query may ask for with limit=; more is TooManyResults.</summary>
    public int MaxLimit { get; set; } = 1000;

    /// <summary>Page size when a query gives no limit= (cut to <see cref="MaxLimit"/> when larger).</summary>
    public int DefaultLimit { get; set; } = 20;

    /// <summary>
    /// How long committed changes stay in the change log for stream clients to resume from (Last-Event-ID). Changes a
    /// consumer (temporal history, subscriptions) has not processed are kept however old they are.
    /// </summary>
    public TimeSpan ChangeRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How often the change log is pruned.</summary>
    public TimeSpan ChangePruneInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Comment line sent on an idle event stream so proxies and browsers keep it open.</summary>
    public TimeSpan StreamHeartbeat { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Changes buffered per stream client; a client that falls further behind is disconnected (it resumes with Last-Event-ID).</summary>
    public int StreamClientBuffer { get; set; } = 1024;
}
