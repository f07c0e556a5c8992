using System.Collections.Concurrent;
using System.Globalization;
using Machi.Bench.Load;
using Machi.Bench.Scenarios;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Bench.Baseline;

/// <summary>
/// The raw storage baseline on PostgreSQL: the SQLite baseline's inserts, updates and reads (<see cref="SqliteTarget"/>)
/// straight into PostgreSQL with Npgsql, no HTTP and no NGSI-LD processing, in the schema machi_bench (dropped and
/// created at the start). Reads: one connection and one prepared SELECT per worker. Writes: every worker hands its
/// operation to one writer thread that sends each group of queued operations as one Npgsql batch inside one
/// transaction (one round trip, one commit and WAL flush per group), as the broker's PostgreSQL writer groups them.
/// </summary>
internal sealed class PostgresTarget : IScenarioTarget, IDisposable
{
    public const string Description =
        "PostgreSQL (Npgsql); reads: one connection and prepared SELECT per worker; writes: one writer thread, group commit of up to "
        + "256 queued operations per transaction sent as one batch; INSERT … ON CONFLICT DO NOTHING / INSERT … ON CONFLICT DO UPDATE / "
        + "UPDATE … doc || patch (jsonb, top-level merge)";

    private const string Schema = """
        DROP SCHEMA IF EXISTS machi_bench CASCADE;
        CREATE SCHEMA machi_bench;
        CREATE TABLE machi_bench.entities (
            tenant text NOT NULL,
            id text NOT NULL,
            rid bigint GENERATED ALWAYS AS IDENTITY,
            types text NOT NULL,
            created_at bigint NOT NULL,
            modified_at bigint NOT NULL,
            doc bytea NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        """;

    private const string Select = "SELECT doc FROM machi_bench.entities WHERE tenant = $1 AND id = $2";

    private const string Insert = """
        INSERT INTO machi_bench.entities (tenant, id, types, created_at, modified_at, doc) VALUES ($1, $2, $3, $4, $4, $5)
        ON CONFLICT (tenant, id) DO NOTHING
        """;

    private const string Upsert = """
        INSERT INTO machi_bench.entities (tenant, id, types, created_at, modified_at, doc) VALUES ($1, $2, $3, $4, $4, $5)
        ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, modified_at = excluded.modified_at, doc = excluded.doc
        """;

    // The stored document is UTF-8 JSON in bytea (as the broker stores EntityCodec's bytes); merged as jsonb.
    private const string Patch = """
        UPDATE machi_bench.entities SET doc = convert_to((convert_from(doc, 'UTF8')::jsonb || $3::jsonb)::text, 'UTF8'), modified_at = $4
        WHERE tenant = $1 AND id = $2
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly VehicleDocuments _documents;
    private readonly BlockingCollection<WriteOp> _queue = [];
    private readonly NpgsqlConnection _writerConnection;
    private readonly Thread _writer;
    private string[] _ids = [];
    private long _commits;
    private long _operations;
    private long _commitsBefore;
    private long _operationsBefore;

    public PostgresTarget(string connectionString, VehicleDocuments documents)
    {
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _documents = documents;
        using (var create = _dataSource.CreateCommand(Schema))
        {
            create.ExecuteNonQuery();
        }

        _writerConnection = _dataSource.OpenConnection();
        _writer = new Thread(Run) { IsBackground = true, Name = "baseline-postgres-writer" };
        _writer.Start();
    }

    public string Name => "raw";

    public bool BlockingWorkers => true;

    public Task SettleAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public bool Supports(ScenarioKind kind) =>
        !Scenario.IsQuery(kind) && !Scenario.IsTemporal(kind) && !Scenario.IsPush(kind) && kind is not (ScenarioKind.CityPreload or ScenarioKind.HistoryPreload);

    public IReadOnlyList<ILoadWorker> CreateWorkers(ScenarioKind kind, Workload workload)
    {
        ArgumentNullException.ThrowIfNull(workload);
        if (Scenario.UsesPreloadedEntities(kind) && _ids.Length != workload.Preloaded)
        {
            _ids = new string[workload.Preloaded];
            for (int n = 0; n < _ids.Length; n++)
            {
                _ids[n] = VehicleDocuments.Id(n);
            }
        }

        _commitsBefore = Interlocked.Read(ref _commits);
        _operationsBefore = Interlocked.Read(ref _operations);
        var ids = _ids;
        int count = workload.WorkersFor(kind);
        var workers = new ILoadWorker[count];
        for (int i = 0; i < count; i++)
        {
            var random = workload.RandomFor(i);
            workers[i] = kind switch
            {
                ScenarioKind.Read => new ReadWorker(_dataSource.OpenConnection(), ids, random),
                ScenarioKind.Create => new WriteWorker(this, op =>
                {
                    long n = workload.Ids.Next();
                    op.Kind = WriteKind.Insert;
                    op.Id = VehicleDocuments.Id(n);
                    op.Document = _documents.Entity(n);
                }),
                ScenarioKind.Update => new WriteWorker(this, op =>
                {
                    op.Kind = WriteKind.Patch;
                    op.Id = ids[random.Next(ids.Length)];
                    op.Patch = _documents.UpdatePatches[random.Next(_documents.UpdatePatches.Count)];
                }),
                ScenarioKind.UpdateAttr => new WriteWorker(this, op =>
                {
                    op.Kind = WriteKind.Patch;
                    op.Id = ids[random.Next(ids.Length)];
                    op.Patch = _documents.SpeedPatches[random.Next(_documents.SpeedPatches.Count)];
                }),
                ScenarioKind.Preload => new WriteWorker(this, op =>
                {
                    op.Kind = WriteKind.Upsert;
                    (op.First, op.Count) = workload.Slices!.Take();
                }),
                ScenarioKind.BatchUpsert => new WriteWorker(this, op =>
                {
                    op.Kind = WriteKind.Upsert;
                    op.First = workload.Ids.Take(workload.BatchSize);
                    op.Count = workload.BatchSize;
                }),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
        }

        return workers;
    }

    public void ReleaseWorkers(IReadOnlyList<ILoadWorker> workers)
    {
        ArgumentNullException.ThrowIfNull(workers);
        foreach (var worker in workers)
        {
            (worker as IDisposable)?.Dispose();
        }
    }

    public void EnsureAlive()
    {
    }

    public string? Annotation()
    {
        long commits = Interlocked.Read(ref _commits) - _commitsBefore;
        long operations = Interlocked.Read(ref _operations) - _operationsBefore;
        return commits == 0
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"{operations / (double)commits:0.0} writes per commit ({commits} commits)");
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        _writer.Join();
        _queue.Dispose();
        _writerConnection.Dispose();
        _dataSource.Dispose();
    }

    private Outcome Execute(WriteOp op, CancellationToken cancellationToken)
    {
        op.Done.Reset();
        _queue.Add(op, cancellationToken);
        op.Done.Wait(cancellationToken);
        return op.Outcome;
    }

    private void Run()
    {
        var group = new List<WriteOp>(GroupCommitWriter.MaxGroup);
        foreach (var first in _queue.GetConsumingEnumerable())
        {
            group.Add(first);
            while (group.Count < GroupCommitWriter.MaxGroup && _queue.TryTake(out var next))
            {
                group.Add(next);
            }

            Commit(group);
            foreach (var op in group)
            {
                op.Done.Set();
            }

            group.Clear();
        }
    }

    private void Commit(List<WriteOp> group)
    {
        long now = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();
        try
        {
            using var tx = _writerConnection.BeginTransaction();
            using var batch = new NpgsqlBatch(_writerConnection, tx);
            var firstCommand = new int[group.Count];
            for (int i = 0; i < group.Count; i++)
            {
                var op = group[i];
                firstCommand[i] = batch.BatchCommands.Count;
                switch (op.Kind)
                {
                    case WriteKind.Insert:
                        batch.BatchCommands.Add(Write(Insert, op.Id, now, op.Document));
                        break;
                    case WriteKind.Upsert:
                        for (long n = op.First; n < op.First + op.Count; n++)
                        {
                            batch.BatchCommands.Add(Write(Upsert, VehicleDocuments.Id(n), now, _documents.Entity(n)));
                        }

                        break;
                    default:
                        var patch = new NpgsqlBatchCommand(Patch);
                        patch.Parameters.Add(new NpgsqlParameter { Value = StorageSchema.DefaultTenant });
                        patch.Parameters.Add(new NpgsqlParameter { Value = op.Id });
                        patch.Parameters.Add(new NpgsqlParameter { Value = op.Patch });
                        patch.Parameters.Add(new NpgsqlParameter { Value = now });
                        batch.BatchCommands.Add(patch);
                        break;
                }
            }

            batch.ExecuteNonQuery();
            tx.Commit();
            for (int i = 0; i < group.Count; i++)
            {
                var op = group[i];
                var affected = batch.BatchCommands[firstCommand[i]].RecordsAffected;
                op.Outcome = op.Kind switch
                {
                    WriteKind.Insert => affected == 1 ? new Outcome(201) : new Outcome(409, "exists: " + op.Id),
                    WriteKind.Upsert => new Outcome(201),
                    _ => affected == 1 ? new Outcome(204) : new Outcome(404, "no such entity: " + op.Id),
                };
            }

            Interlocked.Increment(ref _commits);
            Interlocked.Add(ref _operations, group.Count);
        }
        catch (NpgsqlException e)
        {
            foreach (var op in group)
            {
                op.Outcome = new Outcome(500, "transaction failed: " + e.Message);
            }
        }
    }

    private static NpgsqlBatchCommand Write(string sql, string id, long now, byte[] document)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = StorageSchema.DefaultTenant });
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = StorageSchema.VehicleTypes });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        command.Parameters.Add(new NpgsqlParameter { Value = document, NpgsqlDbType = NpgsqlDbType.Bytea });
        return command;
    }

    private sealed class ReadWorker : ILoadWorker, IDisposable
    {
        private readonly NpgsqlConnection _connection;
        private readonly NpgsqlCommand _select;
        private readonly NpgsqlParameter _id;
        private readonly string[] _ids;
        private readonly Random _random;

        public ReadWorker(NpgsqlConnection connection, string[] ids, Random random)
        {
            _connection = connection;
            _ids = ids;
            _random = random;
            _select = new NpgsqlCommand(Select, connection);
            _select.Parameters.Add(new NpgsqlParameter { Value = StorageSchema.DefaultTenant, NpgsqlDbType = NpgsqlDbType.Text });
            _id = new NpgsqlParameter { Value = "", NpgsqlDbType = NpgsqlDbType.Text };
            _select.Parameters.Add(_id);
            _select.Prepare();
        }

        public ValueTask<Outcome> ExecuteAsync(CancellationToken cancellationToken)
        {
            string id = _ids[_random.Next(_ids.Length)];
            _id.Value = id;

            // The document is copied out, as the broker must to answer.
            return ValueTask.FromResult(_select.ExecuteScalar() is byte[] ? new Outcome(200) : new Outcome(404, "no such entity: " + id));
        }

        public void Dispose()
        {
            _select.Dispose();
            _connection.Dispose();
        }
    }

    private sealed class WriteWorker(PostgresTarget target, Action<WriteOp> fill) : ILoadWorker, IDisposable
    {
        private readonly WriteOp _op = new();

        public ValueTask<Outcome> ExecuteAsync(CancellationToken cancellationToken)
        {
            fill(_op);
            return ValueTask.FromResult(target.Execute(_op, cancellationToken));
        }

        public void Dispose() => _op.Dispose();
    }
}
