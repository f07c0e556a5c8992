using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Trust.Storage;

/// <summary>
/// Where Trust's tables live: the same machi.db the broker uses. The SQLite-specific parts (connection settings, WAL)
/// stay here so a PostgreSQL provider can replace this one file and the migrations folder.
/// </summary>
internal static class TrustDatabase
{
    public static string SqliteConnectionString(string dataDirectory) => new SqliteConnectionStringBuilder
    {
        DataSource = Path.Combine(dataDirectory, "machi.db"),
        Pooling = true,

        // Seconds a command retries while the broker's writer holds the lock (Microsoft.Data.Sqlite retries SQLITE_BUSY).
        DefaultTimeout = 30,
    }.ToString();

    /// <summary>Where the data-protection keys of a SQLite-backed host are (on PostgreSQL they are in trust_data_protection_keys).</summary>
    public static string DataProtectionKeyDirectory(string dataDirectory) => Path.Combine(dataDirectory, "keys", "data-protection");

    public static void UseMachiSqlite(this DbContextOptionsBuilder options, string dataDirectory)
    {
        options.UseSqlite(SqliteConnectionString(dataDirectory), sqlite =>
        {
            sqlite.MigrationsHistoryTable(TrustDbContext.MigrationsHistoryTable);
            sqlite.MigrationsAssembly(typeof(TrustDatabase).Assembly.GetName().Name);
        });
        options.AddInterceptors(SqlitePragmas.Instance);
    }

    /// <summary>
    /// Trust on PostgreSQL (Broker:Database): its own migrations (<see cref="PostgresTrustDbContext"/>); EF Core takes
    /// a database lock while it migrates, so nodes starting together apply each migration once.
    /// </summary>
    public static void UseMachiPostgres(this DbContextOptionsBuilder options, string connectionString) =>
        options.UseNpgsql(connectionString, npgsql =>
        {
            npgsql.MigrationsHistoryTable(TrustDbContext.MigrationsHistoryTable);
            npgsql.MigrationsAssembly(typeof(TrustDatabase).Assembly.GetName().Name);
        });

    /// <summary>Creates or upgrades Trust's tables (idempotent; safe while the broker has the file open).</summary>
    public static async Task MigrateAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TrustDbContext>();
        if (db.Database.IsSqlite())
        {
            var path = new SqliteConnectionStringBuilder(db.Database.GetConnectionString()).DataSource;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);

            // The broker opens the same file in WAL mode; whoever comes first sets it (it is a property of the file).
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
        }
        else if (db.Database.IsNpgsql())
        {
            await CreateHistoryTableAsync(db, cancellationToken).ConfigureAwait(false);
        }

        await db.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The advisory lock under which nodes create Trust's migration history table (any constant shared by the nodes).</summary>
    private const long HistoryTableLock = 0x6D61636869_04;

    /// <summary>
    /// Creates the migration history table, with EF Core's own statement, before migrating. On PostgreSQL EF Core
    /// finds out whether it exists by reading it, and logs the failed read of a new database as an error (npgsql/efcore.pg
    /// #3407), which an operator would see at every first start. Nodes starting together take turns on a lock:
    /// concurrent <c>CREATE TABLE IF NOT EXISTS</c> can collide in PostgreSQL's catalog.
    /// </summary>
    private static async Task CreateHistoryTableAsync(TrustDbContext db, CancellationToken cancellationToken)
    {
        var create = db.GetService<IHistoryRepository>().GetCreateIfNotExistsScript();
        await using var tx = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({HistoryTableLock})", cancellationToken).ConfigureAwait(false);
        await db.Database.ExecuteSqlRawAsync(create, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Each connection waits for the broker's single writer instead of failing with "database is locked", and commits
    /// durably like the broker does (an acknowledged sign-up or token is kept across a crash).
    /// </summary>
    private sealed class SqlitePragmas : DbConnectionInterceptor
    {
        public static readonly SqlitePragmas Instance = new();

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData) => Apply(connection);

        public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            Apply(connection);
            return Task.CompletedTask;
        }

        private static void Apply(DbConnection connection)
        {
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA busy_timeout=10000; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;";
            command.ExecuteNonQuery();
        }
    }
}
