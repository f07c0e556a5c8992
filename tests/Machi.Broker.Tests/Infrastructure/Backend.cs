using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>
/// The database a test's Machi runs on. A suite written once takes a backend in its constructor and starts its
/// servers through it; two small derived classes run it on each (…OnSqlite, and …OnPostgres in the
/// <see cref="PostgresGroup"/> collection, which shares one throwaway cluster).
/// </summary>
public abstract class Backend
{
    public static Backend Sqlite { get; } = new SqliteBackend();

    /// <summary>Each server gets a fresh database on <paramref name="server"/>; a restart on the same data directory gets the same one.</summary>
    public static Backend Postgres(PostgresServer server) => new PostgresBackend(server);

    public abstract bool IsPostgres { get; }

    /// <summary>As <see cref="MachiServer.StartAsync"/>, on this backend.</summary>
    public abstract Task<MachiServer> StartAsync(
        string? dataDirectory = null,
        IDictionary<string, string?>? settings = null,
        Action<IServiceCollection>? configureServices = null,
        Action<WebApplication>? configureApp = null);

    /// <summary>As <see cref="MachiProcess.StartAsync"/>, on this backend.</summary>
    public abstract Task<MachiProcess> StartProcessAsync(
        string? dataDirectory = null,
        IDictionary<string, string?>? environment = null,
        IEnumerable<string>? extraArguments = null);

    public override string ToString() => IsPostgres ? "PostgreSQL" : "SQLite";

    private sealed class SqliteBackend : Backend
    {
        public override bool IsPostgres => false;

        public override Task<MachiServer> StartAsync(string? dataDirectory, IDictionary<string, string?>? settings, Action<IServiceCollection>? configureServices, Action<WebApplication>? configureApp) =>
            MachiServer.StartAsync(dataDirectory, settings, configureServices, configureApp);

        public override Task<MachiProcess> StartProcessAsync(string? dataDirectory, IDictionary<string, string?>? environment, IEnumerable<string>? extraArguments) =>
            MachiProcess.StartAsync(dataDirectory, environment, extraArguments);
    }

    private sealed class PostgresBackend(PostgresServer server) : Backend
    {
        // The database of each data directory, so that a restart on the same directory finds the same data.
        private readonly ConcurrentDictionary<string, string> _databases = new(StringComparer.Ordinal);

        public override bool IsPostgres => true;

        public override async Task<MachiServer> StartAsync(string? dataDirectory, IDictionary<string, string?>? settings, Action<IServiceCollection>? configureServices, Action<WebApplication>? configureApp)
        {
            var database = await DatabaseAsync(dataDirectory);
            var merged = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>(), StringComparer.OrdinalIgnoreCase)
            {
                ["Broker:Database"] = database,
            };
            var machi = await MachiServer.StartAsync(dataDirectory, merged, configureServices, configureApp);
            _databases[machi.DataDirectory] = database;
            return machi;
        }

        public override async Task<MachiProcess> StartProcessAsync(string? dataDirectory, IDictionary<string, string?>? environment, IEnumerable<string>? extraArguments)
        {
            var database = await DatabaseAsync(dataDirectory);
            var merged = new Dictionary<string, string?>(environment ?? new Dictionary<string, string?>(), StringComparer.Ordinal)
            {
                ["Machi__Broker__Database"] = database,
            };
            var machi = await MachiProcess.StartAsync(dataDirectory, merged, extraArguments);
            _databases[machi.DataDirectory] = database;
            return machi;
        }

        private async Task<string> DatabaseAsync(string? dataDirectory) =>
            dataDirectory is not null && _databases.TryGetValue(Path.GetFullPath(dataDirectory), out var known) ? known : await server.CreateDatabaseAsync("machi");
    }
}
