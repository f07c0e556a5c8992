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
}
