using System.Globalization;
using Machi.Bench.Load;
using Machi.Bench.Scenarios;
using Microsoft.Data.Sqlite;

namespace Machi.Bench.Baseline;

/// <summary>
/// The raw storage baseline: the scenarios' inserts, updates and reads straight into a SQLite file, with no HTTP
/// and no NGSI-LD processing — the floor the broker's own storage path sits on. Reads: one connection and one
/// prepared SELECT per worker. Writes: every worker hands its operation to the one <see cref="GroupCommitWriter"/>.
/// </summary>
internal sealed class SqliteTarget : IScenarioTarget, IDisposable
{
    private readonly string _connectionString;
    private readonly string _synchronous;
    private readonly VehicleDocuments _documents;
    private readonly SqliteConnection _writerConnection;
    private readonly GroupCommitWriter _writer;
    private string[] _ids = [];
    private long _commitsBefore;
    private long _operationsBefore;

    /// <param name="synchronous">NORMAL or FULL.</param>
    public SqliteTarget(string databasePath, string synchronous, VehicleDocuments documents)
    {
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString();
        _synchronous = synchronous;
        _documents = documents;
        _writerConnection = OpenConnection();
        using (var create = _writerConnection.CreateCommand())
        {
            create.CommandText = StorageSchema.CreateEntities;
            create.ExecuteNonQuery();
        }

        _writer = new GroupCommitWriter(_writerConnection, documents);
        DatabasePath = databasePath;
    }

    public string Name => "raw";

    public bool BlockingWorkers => true;

    public string DatabasePath { get; }

    public Task SettleAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The baseline stores and reads entities; it has no query engine or history to compare with.</summary>
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

        _commitsBefore = _writer.Commits;
        _operationsBefore = _writer.Operations;
        var ids = _ids;
        int count = workload.WorkersFor(kind);
        var workers = new ILoadWorker[count];
        for (int i = 0; i < count; i++)
        {
            var random = workload.RandomFor(i);
            workers[i] = kind switch
            {
                ScenarioKind.Read => new ReadWorker(OpenConnection(), ids, random),
                ScenarioKind.Create => new WriteWorker(_writer, op =>
                {
                    long n = workload.Ids.Next();
                    op.Kind = WriteKind.Insert;
                    op.Id = VehicleDocuments.Id(n);
                    op.Document = _documents.Entity(n);
                }),
                ScenarioKind.Update => new WriteWorker(_writer, op =>
                {
                    op.Kind = WriteKind.Patch;
                    op.Id = ids[random.Next(ids.Length)];
                    op.Patch = _documents.UpdatePatches[random.Next(_documents.UpdatePatches.Count)];
                }),
                ScenarioKind.UpdateAttr => new WriteWorker(_writer, op =>
                {
                    op.Kind = WriteKind.Patch;
                    op.Id = ids[random.Next(ids.Length)];
                    op.Patch = _documents.SpeedPatches[random.Next(_documents.SpeedPatches.Count)];
                }),
                ScenarioKind.Preload => new WriteWorker(_writer, op =>
                {
                    op.Kind = WriteKind.Upsert;
                    (op.First, op.Count) = workload.Slices!.Take();
                }),
                ScenarioKind.BatchUpsert => new WriteWorker(_writer, op =>
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

    /// <summary>How well the last scenario's writes were grouped.</summary>
    public string? Annotation()
    {
        long commits = _writer.Commits - _commitsBefore;
        long operations = _writer.Operations - _operationsBefore;
        return commits == 0
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"{operations / (double)commits:0.0} writes per commit ({commits} commits)");
    }

    public void Dispose()
    {
        _writer.Dispose();
        _writerConnection.Dispose();
    }

    private SqliteConnection OpenConnection()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragmas = connection.CreateCommand();
        pragmas.CommandText = StorageSchema.ConnectionPragmas + "PRAGMA synchronous = " + _synchronous + ";";
        pragmas.ExecuteNonQuery();
        return connection;
    }

    private sealed class ReadWorker : ILoadWorker, IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _select;
        private readonly SqliteParameter _id;
        private readonly string[] _ids;
        private readonly Random _random;
        private byte[] _buffer = new byte[4096];

        public ReadWorker(SqliteConnection connection, string[] ids, Random random)
        {
            _connection = connection;
            _ids = ids;
            _random = random;
            _select = connection.CreateCommand();
            _select.CommandText = StorageSchema.SelectDocument;
            _select.Parameters.Add("$tenant", SqliteType.Text).Value = StorageSchema.DefaultTenant;
            _id = _select.Parameters.Add("$id", SqliteType.Text);
            _id.Value = "";
            _select.Prepare();
        }

        public ValueTask<Outcome> ExecuteAsync(CancellationToken cancellationToken)
        {
            string id = _ids[_random.Next(_ids.Length)];
            _id.Value = id;
            using var reader = _select.ExecuteReader();
            if (!reader.Read())
            {
                return ValueTask.FromResult(new Outcome(404, "no such entity: " + id));
            }

            // Copy the document out, as the broker must to answer: the read is not done until the bytes are ours.
            int length = (int)reader.GetBytes(0, 0, null, 0, 0);
            if (length > _buffer.Length)
            {
                _buffer = new byte[length * 2];
            }

            reader.GetBytes(0, 0, _buffer, 0, length);
            return ValueTask.FromResult(new Outcome(200));
        }

        public void Dispose()
        {
            _select.Dispose();
            _connection.Dispose();
        }
    }

    private sealed class WriteWorker(GroupCommitWriter writer, Action<WriteOp> fill) : ILoadWorker, IDisposable
    {
        private readonly WriteOp _op = new();

        public ValueTask<Outcome> ExecuteAsync(CancellationToken cancellationToken)
        {
            fill(_op);
            return ValueTask.FromResult(writer.Execute(_op, cancellationToken));
        }

        public void Dispose() => _op.Dispose();
    }
}
