using System.Globalization;
using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Access;

/// <summary>
/// The access log (<see cref="IAccessLog"/>) in PostgreSQL, table access_log: one hash chain per node (its
/// <see cref="AccessRecord.Node"/>), numbered from 1, so nodes append without waiting for each other. A group of
/// appends is one transaction that takes the chain's advisory lock and reads the chain's last link itself, so two
/// processes that share a node name still make one unbroken chain. Redaction keeps the node, the key of the chain.
/// </summary>
public sealed class PostgresAccessLog : IAccessLog
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly Channel<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)> _pending =
        Channel.CreateUnbounded<(IReadOnlyList<AccessRecord>, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lazy<Task> _loop;

    /// <param name="ownsDataSource">True when the log disposes <paramref name="dataSource"/> (the CLI's own).</param>
    public PostgresAccessLog(NpgsqlDataSource dataSource, bool ownsDataSource = false)
    {
        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
        _loop = new Lazy<Task>(() => Task.Run(WriterLoop));
    }

    public Task AppendAsync(IReadOnlyList<AccessRecord> records)
    {
        if (records.Count == 0)
        {
            return Task.CompletedTask;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending.Writer.TryWrite((records, done));
        _ = _loop.Value;
        return done.Task;
    }

    public async Task<IReadOnlyList<AccessLogEntry>> ReadAsync(string? resident = null, string? clientId = null, DateTimeOffset? since = null, DateTimeOffset? until = null,
        int limit = 100, int offset = 0, bool newestFirst = true, CancellationToken cancellationToken = default)
    {
        await using var cmd = _dataSource.CreateCommand();
        var where = new List<string> { "true" };
        void Filter(string condition, object value)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = value });
            where.Add(condition.Replace("?", "$" + cmd.Parameters.Count.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        }

        if (resident is not null)
        {
            Filter("resident = ?", resident);
        }

        if (clientId is not null)
        {
            Filter("client_id = ?", clientId);
        }

        if (since is not null)
        {
            Filter("at >= ?", since.Value.UtcTicks);
        }

        if (until is not null)
        {
            Filter("at < ?", until.Value.UtcTicks);
        }

        var order = newestFirst ? "at DESC, node DESC, seq DESC" : "at, node, seq";
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)limit });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)offset });
        cmd.CommandText = string.Create(CultureInfo.InvariantCulture,
            $"{Select} WHERE {string.Join(" AND ", where)} ORDER BY {order} LIMIT ${cmd.Parameters.Count - 1} OFFSET ${cmd.Parameters.Count}");
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<AccessLogEntry>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(Entry(r));
        }

        return list;
    }

    /// <summary>Every chain from its first record: records counted over all nodes; the first break names its node.</summary>
    public async Task<AccessLogVerification> VerifyAsync(CancellationToken cancellationToken = default)
    {
        await using var cmd = _dataSource.CreateCommand($"{Select} ORDER BY node, seq");
        NpgsqlDataReader r;
        try
        {
            r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            // A database no node has served yet: nothing logged.
            return new AccessLogVerification(0, 0, null, null);
        }

        await using var reader = r;
        var verifier = new AccessLogVerifier();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (verifier.Check(Entry(r), r.GetString(NodeColumn)) is { } broken)
            {
                return broken;
            }
        }

        return verifier.Intact();
    }

    public async Task<int> RedactAsync(string resident, AccessRecord erasure)
    {
        await using var cmd = _dataSource.CreateCommand("""
            UPDATE access_log SET resident = NULL, client_id = NULL, subject = NULL, purpose = NULL, emergency_reason = NULL,
                operation = NULL, tenant = NULL, entity_id = NULL, attributes = NULL, redacted = true
            WHERE resident = $1
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = resident });
        var redacted = await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        await AppendAsync([erasure]).ConfigureAwait(false);
        return redacted;
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        if (_loop.IsValueCreated)
        {
            await _loop.Value.ConfigureAwait(false);
        }

        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    private const int NodeColumn = 11;

    private const string Select =
        "SELECT seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, redacted, digest, hash FROM access_log";

    private static AccessLogEntry Entry(NpgsqlDataReader r)
    {
        string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
        var record = r.GetBoolean(12)
            ? null
            : new AccessRecord(new DateTimeOffset(r.GetInt64(1), TimeSpan.Zero), r.GetString(2), Text(3), Text(4), Text(5), Text(6),
                r.GetString(7), r.GetString(8), r.GetString(9), Text(10), r.GetString(NodeColumn));
        return new AccessLogEntry(r.GetInt64(0), record, r.GetString(13), r.GetString(14));
    }

    private async Task WriterLoop()
    {
        var batch = new List<(IReadOnlyList<AccessRecord> Records, TaskCompletionSource Done)>();
        while (await _pending.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (_pending.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            try
            {
                await CommitAsync([.. batch.SelectMany(b => b.Records)]).ConfigureAwait(false);
                batch.ForEach(b => b.Done.TrySetResult());
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException)
            {
                batch.ForEach(b => b.Done.TrySetException(ex));
            }
        }
    }

    /// <summary>Appends a group of records, each chain under its lock, in one transaction.</summary>
    private async Task CommitAsync(List<AccessRecord> records)
    {
        await using var connection = await _dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync().ConfigureAwait(false);
        foreach (var chain in records.GroupBy(r => r.Node, StringComparer.Ordinal))
        {
            long seq = 0;
            var hash = AccessLogChain.Start();
            await using (var last = new NpgsqlBatch(connection, tx))
            {
                var lockChain = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(hashtextextended('machi_access_log:' || $1, 0))");
                lockChain.Parameters.Add(new NpgsqlParameter { Value = chain.Key });
                var read = new NpgsqlBatchCommand("SELECT seq, hash FROM access_log WHERE node = $1 ORDER BY seq DESC LIMIT 1");
                read.Parameters.Add(new NpgsqlParameter { Value = chain.Key });
                last.BatchCommands.Add(lockChain);
                last.BatchCommands.Add(read);
                await using var r = await last.ExecuteReaderAsync().ConfigureAwait(false);
                await r.NextResultAsync().ConfigureAwait(false);
                if (await r.ReadAsync().ConfigureAwait(false))
                {
                    seq = r.GetInt64(0);
                    hash = Convert.FromHexString(r.GetString(1));
                }
            }

            await using var insert = new NpgsqlBatch(connection, tx);
            foreach (var record in chain)
            {
                seq++;
                var digest = AccessLogChain.Digest(seq, record);
                hash = AccessLogChain.Chain(hash, digest);
                var command = new NpgsqlBatchCommand("""
                    INSERT INTO access_log (node, seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, digest, hash)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                    """);
                foreach (var value in new object?[]
                {
                    record.Node, seq, record.At.UtcTicks, record.Resident, record.ClientId, record.Subject, record.Purpose, record.EmergencyReason,
                    record.Operation, record.Tenant, record.EntityId, record.Attributes, Convert.ToHexStringLower(digest), Convert.ToHexStringLower(hash),
                })
                {
                    command.Parameters.Add(value switch
                    {
                        null => new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                        _ => new NpgsqlParameter { Value = value },
                    });
                }

                insert.BatchCommands.Add(command);
            }

            await insert.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        await tx.CommitAsync().ConfigureAwait(false);
    }
}
