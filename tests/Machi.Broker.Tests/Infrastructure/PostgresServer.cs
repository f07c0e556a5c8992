using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL 15 cluster with PostGIS (Debian's postgresql-15-postgis-3, which test.sh installs): initdb
/// into a temp directory, trust authentication, loopback only on a free port, fsync on (durability is part of what is
/// tested), small shared buffers (the machine is shared). One per test collection; each test class asks for its own
/// database (cloned from a template that already has the postgis extension). Stopped and deleted on dispose.
/// initdb and postgres refuse to run as root, so as root they run as the OS user "postgres" (runuser).
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    public const string BinDirectory = "/usr/lib/postgresql/15/bin";
    private const string Template = "machi_template";
    private const string OwnerFile = "owner.pid";

    private readonly string _directory = TempDirectory.Create("machi-pg-");
    private int _databases;
    private bool _started;

    public int Port { get; } = FreePort.Next();

    private string DataDirectory => Path.Combine(_directory, "data");

    private static bool IsRoot => Environment.UserName == "root";

    /// <summary>A connection string for a new, empty database with PostGIS.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "test")
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databases).ToString(CultureInfo.InvariantCulture)}".ToLowerInvariant();
        await ExecuteAsync(ConnectionString("postgres"), $"CREATE DATABASE {name} TEMPLATE {Template}");
        return ConnectionString(name);
    }

    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        Pooling = true,
        MaxPoolSize = 20,

        // Every test server has a database (so a pool) of its own, and EF Core (Trust) uses Npgsql's global pools:
        // idle connections must close soon, or finished tests hold the cluster's connections.
        ConnectionIdleLifetime = 2,
        ConnectionPruningInterval = 1,
    }.ToString();

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(Path.Combine(BinDirectory, "initdb")), $"{BinDirectory}/initdb is missing: install postgresql-15 (./test.sh does).");
        Assert.True(File.Exists("/usr/share/postgresql/15/extension/postgis.control"), "PostGIS is missing: install postgresql-15-postgis-3 (./test.sh does).");
        await StopAbandonedAsync();
        await File.WriteAllTextAsync(Path.Combine(_directory, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        if (IsRoot)
        {
            await RunAsync("chown", "postgres:postgres", _directory);
        }

        await RunPostgresToolAsync("initdb", "-D", DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync");
        var config = new StringBuilder()
            .AppendLine("listen_addresses = '127.0.0.1'")
            .AppendLine(CultureInfo.InvariantCulture, $"port = {Port}")
            .AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{_directory}'")
            .AppendLine("fsync = on")
            .AppendLine("synchronous_commit = on")
            .AppendLine("shared_buffers = 32MB")
            .AppendLine("max_connections = 200")
            .AppendLine("max_wal_size = 256MB");
        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), config.ToString());
        if (IsRoot)
        {
            await RunAsync("chown", "postgres:postgres", Path.Combine(DataDirectory, "postgresql.conf"));
        }

        await RunPostgresToolAsync("pg_ctl", "-D", DataDirectory, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "60", "start");
        _started = true;
        await ExecuteAsync(ConnectionString("postgres"), $"CREATE DATABASE {Template}");
        await ExecuteAsync(ConnectionString(Template), "CREATE EXTENSION postgis");
        NpgsqlConnection.ClearAllPools();
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_started)
        {
            // Fast: rolls back open sessions and stops; a checkpoint of a test database is short.
            await RunPostgresToolAsync("pg_ctl", "-D", DataDirectory, "-m", "fast", "-w", "-t", "60", "stop");
        }

        TempDirectory.Delete(_directory);
    }

    /// <summary>What the server logged, for failure messages.</summary>
    public string Log => File.Exists(Path.Combine(_directory, "server.log")) ? File.ReadAllText(Path.Combine(_directory, "server.log")) : string.Empty;

    /// <summary>
    /// Stops and deletes the clusters of test runs that died without their cleanup (killed, timed out): a server left
    /// running would hold memory and a port on a shared machine for good. A cluster is abandoned when the process
    /// that started it (its owner file) no longer exists.
    /// </summary>
    private static async Task StopAbandonedAsync()
    {
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), "machi-pg-*"))
        {
            var owner = Path.Combine(directory, OwnerFile);
            if (!File.Exists(owner) || !int.TryParse((await File.ReadAllTextAsync(owner)).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || Directory.Exists($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}"))
            {
                continue;
            }

            var data = Path.Combine(directory, "data");
            if (File.Exists(Path.Combine(data, "postmaster.pid")))
            {
                try
                {
                    await RunPostgresToolAsync("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop");
                }
                catch (Xunit.Sdk.XunitException)
                {
                    // Already stopped: only the directory is left.
                }
            }

            TempDirectory.Delete(directory);
        }
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        await cmd.ExecuteNonQueryAsync();
    }

    private static Task RunPostgresToolAsync(string tool, params string[] arguments)
    {
        var path = Path.Combine(BinDirectory, tool);
        return IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", path, .. arguments]) : RunAsync(path, arguments);
    }

    private static async Task RunAsync(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            Assert.Fail($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{await output}\n{await error}");
        }
    }
}

/// <summary>The test classes that share one <see cref="PostgresServer"/> (each with its own database).</summary>
[CollectionDefinition(Name)]
public sealed class PostgresGroup : ICollectionFixture<PostgresServer>
{
    public const string Name = "PostgreSQL";
}

/// <summary>
/// A second cluster for the subscription, stream and registration suites: a collection runs its classes one after
/// another, so two halves on two clusters run side by side (the PostgreSQL suites alone took 18 minutes in one). The
/// longer half decides the run's length, so the halves are balanced by time: with the temporal suites here too, this
/// half ran 100–200 s longer than the first.
/// </summary>
[CollectionDefinition(Name)]
public sealed class PostgresSecondGroup : ICollectionFixture<PostgresServer>
{
    public const string Name = "PostgreSQL (second cluster)";
}

/// <summary>
/// The suites that time how fast something crosses from one node to another: they run alone, after the parallel
/// collections, on a cluster of their own. On two cores the other suites running beside them stretched a write's
/// path to another node's stream from ~0.1 s to 1.3 s, which measured the test run, not the nodes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PostgresAloneGroup : ICollectionFixture<PostgresServer>
{
    public const string Name = "PostgreSQL (alone)";
}
