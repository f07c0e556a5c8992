namespace Machi.Broker.Storage;

/// <summary>Process-wide settings of the SQLite library, made before the first database is opened.</summary>
public static class SqliteRuntime
{
    private const int ConfigMemoryStatistics = 9; // SQLITE_CONFIG_MEMSTATUS

    /// <summary>
    /// Turns SQLite's memory statistics off: they take one process-wide mutex on every allocation and free of every
    /// connection, which the writer, the access log's indexer and the readers all contended for (mutex lock and
    /// unlock were ~4 % of the broker's CPU in a batch upsert). Machi never reads the statistics. Too late once a
    /// database is open (SQLite then refuses, and nothing changes), so the host calls it first.
    /// </summary>
    public static void Configure()
    {
        SQLitePCL.Batteries_V2.Init();
        _ = SQLitePCL.raw.sqlite3_config(ConfigMemoryStatistics, 0);
    }
}
