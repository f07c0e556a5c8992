namespace Machi.Broker.Storage;

/// <summary>Process-wide settings of the SQLite library, made before the first database is opened.</summary>
public static class SqliteRuntime
{
    private const int ConfigMultiThread = 2; // SQLITE_CONFIG_MULTITHREAD
    private const int ConfigMemoryStatistics = 9; // SQLITE_CONFIG_MEMSTATUS

    /// <summary>
    /// Turns SQLite's memory statistics off: they take one process-wide mutex on every allocation and free of every
    /// connection, which the writer, the access log's indexer and the readers all contended for (mutex lock and
    /// unlock were ~4 % of the broker's CPU in a batch upsert). Machi never reads the statistics. Too late once a
    /// database is open (SQLite then refuses, and nothing changes), so the host calls it first.
    /// </summary>
    /// <remarks>
    /// Connections run without their own mutex (multi-thread mode): SQLite otherwise locks and unlocks the connection's
    /// mutex around every call — every bind, step, column read and reset — ~5 % of the single writer's CPU in a batch
    /// upsert. Machi never uses a connection from two threads at once (neither may any user of Microsoft.Data.Sqlite: a
    /// connection, its commands and readers are not thread-safe); the writer's, the readers' (rented one request at a
    /// time) and the checkpointer's each have one user at a time.
    /// </remarks>
    public static void Configure()
    {
        SQLitePCL.Batteries_V2.Init();
        _ = SQLitePCL.raw.sqlite3_config(ConfigMultiThread);
        _ = SQLitePCL.raw.sqlite3_config(ConfigMemoryStatistics, 0);
    }
}
