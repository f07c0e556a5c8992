using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Machi.Snow.Ingestion;
using Microsoft.Data.Sqlite;

namespace Machi.Snow.Storage;

/// <summary>
/// <see cref="ISnowStore"/> on the host's SQLite file (WAL). One writer connection commits whatever writes are waiting
/// together (group commit) with <c>synchronous=FULL</c>, so a position is acknowledged only once it is on disk; reads
/// use pooled connections of their own.
/// </summary>
internal sealed class SqliteSnowStore : ISnowStore
{
    /// <summary>Versioned migrations: each runs once, in order, in its own transaction; <c>snow_schema</c> records the version.</summary>
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE IF NOT EXISTS snow_devices(
            id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash BLOB NOT NULL, simulated INTEGER NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS snow_positions(
            seq INTEGER PRIMARY KEY, device_id TEXT NOT NULL, time INTEGER NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL,
            speed REAL, heading REAL, state INTEGER NOT NULL, altitude REAL, accuracy REAL, battery REAL, source TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS snow_positions_by_device_time ON snow_positions(device_id, time);
        CREATE INDEX IF NOT EXISTS snow_positions_by_time ON snow_positions(time);
        CREATE TABLE IF NOT EXISTS snow_plow_cells(
            cell INTEGER NOT NULL, time INTEGER NOT NULL, seq INTEGER NOT NULL, prev_seq INTEGER,
            PRIMARY KEY(cell, time, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS snow_rejections(reason TEXT PRIMARY KEY, count INTEGER NOT NULL, last_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS snow_events(id INTEGER PRIMARY KEY, started_at INTEGER NOT NULL, name TEXT);
        """,
    ];

    private readonly string _connectionString;
    private readonly Channel<PendingWrite> _writes = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private SqliteConnection? _writer;
    private Task? _writerLoop;

    public SqliteSnowStore(string databasePath)
    {
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public async Task InitializeAsync(CancellationToken ct)
    {
        if (_writer is not null)
        {
            return;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(new SqliteConnectionStringBuilder(_connectionString).DataSource))!);
        var writer = new SqliteConnection(_connectionString);
        await writer.OpenAsync(ct).ConfigureAwait(false);
        Execute(writer, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;");
        Execute(writer, "CREATE TABLE IF NOT EXISTS snow_schema(version INTEGER NOT NULL)");
        using (var read = writer.CreateCommand())
        {
            read.CommandText = "SELECT COALESCE(MAX(version), 0) FROM snow_schema";
            var version = Convert.ToInt32(await read.ExecuteScalarAsync(ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
            for (var v = version; v < Migrations.Length; v++)
            {
                using var tx = writer.BeginTransaction();
                Execute(writer, Migrations[v], tx);
                Execute(writer, $"DELETE FROM snow_schema; INSERT INTO snow_schema(version) VALUES ({v + 1})", tx);
                tx.Commit();
            }
        }

        _writer = writer;
        _writerLoop = Task.Run(WriteLoopAsync, CancellationToken.None);
    }

    public async Task<IReadOnlyList<DeviceRecord>> DevicesAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, token_hash, simulated, created_at FROM snow_devices ORDER BY id";
        var devices = new List<DeviceRecord>();
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            devices.Add(ReadDevice(reader));
        }

        return devices;
    }

    public async Task<DeviceRecord?> FindDeviceAsync(string id, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, token_hash, simulated, created_at FROM snow_devices WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        return await reader.ReadAsync(ct).ConfigureAwait(false) ? ReadDevice(reader) : null;
    }

    public Task SaveDeviceAsync(DeviceRecord device, CancellationToken ct) => WriteAsync((connection, tx) =>
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = """
            INSERT INTO snow_devices(id, name, token_hash, simulated, created_at) VALUES ($id, $name, $hash, $sim, $at)
            ON CONFLICT(id) DO UPDATE SET name = excluded.name, token_hash = excluded.token_hash, simulated = excluded.simulated
            """;
        command.Parameters.AddWithValue("$id", device.Id);
        command.Parameters.AddWithValue("$name", device.Name);
        command.Parameters.AddWithValue("$hash", device.TokenHash);
        command.Parameters.AddWithValue("$sim", device.Simulated ? 1 : 0);
        command.Parameters.AddWithValue("$at", device.CreatedAt.ToUnixTimeMilliseconds());
        command.ExecuteNonQuery();
        return 0L;
    }, ct);

    public async Task<IReadOnlyList<TrackFix>> LatestFixesAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        // One index seek per device on (device_id, time).
        command.CommandText = $"""
            SELECT {FixColumns} FROM snow_devices d
            JOIN snow_positions p ON p.seq = (SELECT seq FROM snow_positions WHERE device_id = d.id ORDER BY time DESC, seq DESC LIMIT 1)
            """;
        var fixes = new List<TrackFix>();
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            fixes.Add(ReadFix(reader));
        }

        return fixes;
    }

    public async Task<TrackFix> AppendAsync(TrackFix fix, TrackFix? previous, CancellationToken ct)
    {
        // The cells are computed here, on the caller's thread, not on the single writer's.
        var cells = fix.State == PlowState.Plowing
            ? previous is not null ? PlowGrid.SegmentCells(previous.Lat, previous.Lon, fix.Lat, fix.Lon) : [PlowGrid.Cell(fix.Lat, fix.Lon)]
            : null;
        var seq = await WriteAsync((connection, tx) =>
        {
            using var insert = connection.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO snow_positions(device_id, time, lat, lon, speed, heading, state, altitude, accuracy, battery, source)
                VALUES ($d, $t, $lat, $lon, $speed, $heading, $state, $alt, $acc, $batt, $src) RETURNING seq
                """;
            insert.Parameters.AddWithValue("$d", fix.DeviceId);
            insert.Parameters.AddWithValue("$t", fix.Time.ToUnixTimeMilliseconds());
            insert.Parameters.AddWithValue("$lat", fix.Lat);
            insert.Parameters.AddWithValue("$lon", fix.Lon);
            insert.Parameters.AddWithValue("$speed", (object?)fix.SpeedKmh ?? DBNull.Value);
            insert.Parameters.AddWithValue("$heading", (object?)fix.Heading ?? DBNull.Value);
            insert.Parameters.AddWithValue("$state", (int)fix.State);
            insert.Parameters.AddWithValue("$alt", (object?)fix.Altitude ?? DBNull.Value);
            insert.Parameters.AddWithValue("$acc", (object?)fix.Accuracy ?? DBNull.Value);
            insert.Parameters.AddWithValue("$batt", (object?)fix.Battery ?? DBNull.Value);
            insert.Parameters.AddWithValue("$src", fix.Source);
            var seq = Convert.ToInt64(insert.ExecuteScalar(), CultureInfo.InvariantCulture);
            if (cells is not null)
            {
                using var cell = connection.CreateCommand();
                cell.Transaction = tx;
                cell.CommandText = "INSERT OR IGNORE INTO snow_plow_cells(cell, time, seq, prev_seq) VALUES ($c, $t, $s, $p)";
                var c = cell.Parameters.Add("$c", SqliteType.Integer);
                cell.Parameters.AddWithValue("$t", fix.Time.ToUnixTimeMilliseconds());
                cell.Parameters.AddWithValue("$s", seq);
                cell.Parameters.AddWithValue("$p", (object?)previous?.Seq ?? DBNull.Value);
                cell.Prepare();
                foreach (var value in cells)
                {
                    c.Value = value;
                    cell.ExecuteNonQuery();
                }
            }

            return seq;
        }, ct).ConfigureAwait(false);
        return fix with { Seq = seq };
    }

    public Task CountRejectionAsync(string reason, DateTimeOffset at, CancellationToken ct) => WriteAsync((connection, tx) =>
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = """
            INSERT INTO snow_rejections(reason, count, last_at) VALUES ($r, 1, $at)
            ON CONFLICT(reason) DO UPDATE SET count = count + 1, last_at = excluded.last_at
            """;
        command.Parameters.AddWithValue("$r", reason);
        command.Parameters.AddWithValue("$at", at.ToUnixTimeMilliseconds());
        command.ExecuteNonQuery();
        return 0L;
    }, ct);

    public async Task<IReadOnlyDictionary<string, long>> RejectionCountsAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT reason, count FROM snow_rejections";
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public async Task<PlowPass?> LastPlowedAsync(double lat, double lon, double metres, DateTimeOffset since, CancellationToken ct)
    {
        var cells = PlowGrid.CellsAround(lat, lon, metres);
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        var sql = new StringBuilder("""
            SELECT p.device_id, p.time, p.lat, p.lon, q.lat, q.lon
            FROM snow_plow_cells c JOIN snow_positions p ON p.seq = c.seq LEFT JOIN snow_positions q ON q.seq = c.prev_seq
            WHERE c.cell IN (
            """);
        for (var i = 0; i < cells.Count; i++)
        {
            sql.Append(i == 0 ? "" : ",").Append("$c").Append(i);
            command.Parameters.AddWithValue("$c" + i.ToString(CultureInfo.InvariantCulture), cells[i]);
        }

        // Newest first, a page at a time: the first segment within range is the answer.
        sql.Append(") AND c.time >= $since AND c.time < $before ORDER BY c.time DESC LIMIT 256");
        command.CommandText = sql.ToString();
        command.Parameters.AddWithValue("$since", since.ToUnixTimeMilliseconds());
        var before = command.Parameters.AddWithValue("$before", long.MaxValue);
        while (true)
        {
            var rows = 0;
            long oldest = long.MaxValue;
            await using (var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    rows++;
                    var time = reader.GetInt64(1);
                    oldest = Math.Min(oldest, time);
                    double bLat = reader.GetDouble(2), bLon = reader.GetDouble(3);
                    double aLat = reader.IsDBNull(4) ? bLat : reader.GetDouble(4), aLon = reader.IsDBNull(5) ? bLon : reader.GetDouble(5);
                    var distance = Geo.DistanceToSegment(lat, lon, aLat, aLon, bLat, bLon);
                    if (distance <= metres)
                    {
                        return new PlowPass(reader.GetString(0), DateTimeOffset.FromUnixTimeMilliseconds(time), distance);
                    }
                }
            }

            if (rows < 256)
            {
                return null;
            }

            // Rows of the same millisecond as the page's last are read again; that only repeats a failed check.
            before.Value = oldest == (long)before.Value! ? oldest - 1 : oldest;
        }
    }

    public async IAsyncEnumerable<TrackFix> TrackAsync(DateTimeOffset from, DateTimeOffset to, [EnumeratorCancellation] CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {FixColumns} FROM snow_positions p WHERE p.time >= $from AND p.time < $to ORDER BY p.device_id, p.time";
        command.Parameters.AddWithValue("$from", from.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$to", to.ToUnixTimeMilliseconds());
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            yield return ReadFix(reader);
        }
    }

    public async Task<DateTimeOffset?> CurrentEventStartAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT MAX(started_at) FROM snow_events";
        return await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is long ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
    }

    public Task StartEventAsync(DateTimeOffset at, string? name, CancellationToken ct) => WriteAsync((connection, tx) =>
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "INSERT INTO snow_events(started_at, name) VALUES ($at, $name)";
        command.Parameters.AddWithValue("$at", at.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$name", (object?)name ?? DBNull.Value);
        command.ExecuteNonQuery();
        return 0L;
    }, ct);

    public async ValueTask DisposeAsync()
    {
        _writes.Writer.TryComplete();
        if (_writerLoop is not null)
        {
            await _writerLoop.ConfigureAwait(false);
        }

        if (_writer is not null)
        {
            await _writer.DisposeAsync().ConfigureAwait(false);
        }
    }

    private const string FixColumns = "p.seq, p.device_id, p.time, p.lat, p.lon, p.speed, p.heading, p.state, p.altitude, p.accuracy, p.battery, p.source";

    private static TrackFix ReadFix(SqliteDataReader r) => new(
        r.GetInt64(0), r.GetString(1), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)), r.GetDouble(3), r.GetDouble(4),
        Nullable(r, 5), Nullable(r, 6), (PlowState)r.GetInt32(7), Nullable(r, 8), Nullable(r, 9), Nullable(r, 10), r.GetString(11));

    private static double? Nullable(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetDouble(i);

    private static DeviceRecord ReadDevice(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), (byte[])r.GetValue(2), r.GetInt32(3) != 0, DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)));

    private async Task<SqliteConnection> OpenAsync(CancellationToken ct)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(ct).ConfigureAwait(false);
        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql, SqliteTransaction? tx = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private Task<long> WriteAsync(Func<SqliteConnection, SqliteTransaction, long> write, CancellationToken ct)
    {
        if (_writer is null)
        {
            throw new InvalidOperationException("The snow store is not initialised.");
        }

        var pending = new PendingWrite(write);
        return _writes.Writer.TryWrite(pending) ? pending.Completion.Task.WaitAsync(ct) : throw new ObjectDisposedException(nameof(SqliteSnowStore));
    }

    /// <summary>Commits every waiting write in one transaction (each in a savepoint, so one failure fails only itself).</summary>
    private async Task WriteLoopAsync()
    {
        var batch = new List<PendingWrite>();
        var results = new List<long>();
        while (await _writes.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < 512 && _writes.Reader.TryRead(out var next))
            {
                batch.Add(next);
            }

            results.Clear();
            var failures = new Exception?[batch.Count];
            try
            {
                using var tx = _writer!.BeginTransaction();
                for (var i = 0; i < batch.Count; i++)
                {
                    Execute(_writer, "SAVEPOINT w", tx);
                    try
                    {
                        results.Add(batch[i].Write(_writer, tx));
                        Execute(_writer, "RELEASE w", tx);
                    }
                    catch (SqliteException e)
                    {
                        Execute(_writer, "ROLLBACK TO w; RELEASE w", tx);
                        results.Add(0);
                        failures[i] = e;
                    }
                }

                tx.Commit();
            }
            catch (Exception e) when (e is SqliteException or InvalidOperationException)
            {
                foreach (var write in batch)
                {
                    write.Completion.TrySetException(e);
                }

                continue;
            }

            for (var i = 0; i < batch.Count; i++)
            {
                if (failures[i] is { } failure)
                {
                    batch[i].Completion.TrySetException(failure);
                }
                else
                {
                    batch[i].Completion.TrySetResult(results[i]);
                }
            }
        }
    }

    private sealed class PendingWrite(Func<SqliteConnection, SqliteTransaction, long> write)
    {
        public Func<SqliteConnection, SqliteTransaction, long> Write { get; } = write;

        public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
