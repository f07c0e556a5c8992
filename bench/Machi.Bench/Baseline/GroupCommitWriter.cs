using System.Collections.Concurrent;
using Machi.Bench.Load;
using Machi.Bench.Scenarios;
using Microsoft.Data.Sqlite;

namespace Machi.Bench.Baseline;

internal enum WriteKind
{
    Insert,
    Upsert,
    Patch,
}

/// <summary>One write waiting for the writer. Each worker owns one and reuses it: it blocks until
/// <see cref="Done"/> is set, so the writer never sees it change under it.</summary>
internal sealed class WriteOp : IDisposable
{
    public WriteKind Kind { get; set; }

    public string Id { get; set; } = "";

    public byte[] Document { get; set; } = [];

    public string Patch { get; set; } = "";

    public long First { get; set; }

    public int Count { get; set; }

    public Outcome Outcome { get; set; }

    public ManualResetEventSlim Done { get; } = new(false);

    public void Dispose() => Done.Dispose();
}

/// <summary>
/// The single SQLite writer with group commit: concurrent writers queue their operation; the writer thread takes
/// the first waiting one plus every other one already queued (up to <see cref="MaxGroup"/>), runs them all in
/// one IMMEDIATE transaction with prepared statements, commits once, then releases them all. Under load the cost
/// of each commit (and, with synchronous=FULL, its fsync) is shared by everything that arrived meanwhile; with a
/// single writer nothing waits on SQLite's write lock.
/// </summary>
internal sealed class GroupCommitWriter : IDisposable
{
    public const int MaxGroup = 256;

    private const int SqliteConstraint = 19;

    private readonly BlockingCollection<WriteOp> _queue = [];
    private readonly SqliteConnection _connection;
    private readonly VehicleDocuments _documents;
    private readonly SqliteCommand _insert;
    private readonly SqliteCommand _upsert;
    private readonly SqliteCommand _patch;
    private readonly Thread _thread;
    private long _commits;
    private long _operations;

    public GroupCommitWriter(SqliteConnection connection, VehicleDocuments documents)
    {
        _connection = connection;
        _documents = documents;
        _insert = Prepare(StorageSchema.InsertEntity, withDocument: true, withPatch: false);
        _upsert = Prepare(StorageSchema.UpsertEntity, withDocument: true, withPatch: false);
        _patch = Prepare(StorageSchema.PatchDocument, withDocument: false, withPatch: true);
        _thread = new Thread(Run) { IsBackground = true, Name = "baseline-writer" };
        _thread.Start();
    }

    public long Commits => Interlocked.Read(ref _commits);

    public long Operations => Interlocked.Read(ref _operations);

    /// <summary>Queues <paramref name="op"/> and blocks until its transaction has committed.</summary>
    public Outcome Execute(WriteOp op, CancellationToken cancellationToken)
    {
        op.Done.Reset();
        _queue.Add(op, cancellationToken);
        op.Done.Wait(cancellationToken);
        return op.Outcome;
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        _thread.Join();
        _insert.Dispose();
        _upsert.Dispose();
        _patch.Dispose();
        _queue.Dispose();
    }

    private void Run()
    {
        var group = new List<WriteOp>(MaxGroup);
        foreach (var first in _queue.GetConsumingEnumerable())
        {
            group.Add(first);
            while (group.Count < MaxGroup && _queue.TryTake(out var next))
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
        SqliteTransaction? transaction = null;
        try
        {
            transaction = _connection.BeginTransaction(deferred: false);
            _insert.Transaction = _upsert.Transaction = _patch.Transaction = transaction;
            _insert.Parameters["$now"].Value = _upsert.Parameters["$now"].Value = _patch.Parameters["$now"].Value = now;
            foreach (var op in group)
            {
                op.Outcome = Apply(op);
            }

            transaction.Commit();
            Interlocked.Increment(ref _commits);
            Interlocked.Add(ref _operations, group.Count);
        }
        catch (SqliteException e)
        {
            foreach (var op in group)
            {
                op.Outcome = new Outcome(500, "transaction failed: " + e.Message);
            }
        }
        finally
        {
            transaction?.Dispose();
        }
    }

    private Outcome Apply(WriteOp op)
    {
        try
        {
            switch (op.Kind)
            {
                case WriteKind.Insert:
                    Bind(_insert, op.Id, op.Document).ExecuteNonQuery();
                    return new Outcome(201);
                case WriteKind.Upsert:
                    for (long n = op.First; n < op.First + op.Count; n++)
                    {
                        Bind(_upsert, VehicleDocuments.Id(n), _documents.Entity(n)).ExecuteNonQuery();
                    }

                    return new Outcome(201);
                case WriteKind.Patch:
                    _patch.Parameters["$id"].Value = op.Id;
                    _patch.Parameters["$patch"].Value = op.Patch;
                    return _patch.ExecuteNonQuery() == 1 ? new Outcome(204) : new Outcome(404, "no such entity: " + op.Id);
                default:
                    throw new InvalidOperationException("unknown write " + op.Kind);
            }
        }
        catch (SqliteException e) when (e.SqliteErrorCode == SqliteConstraint)
        {
            return new Outcome(409, e.Message);
        }
        catch (SqliteException e)
        {
            return new Outcome(500, e.Message);
        }
    }

    private static SqliteCommand Bind(SqliteCommand command, string id, byte[] document)
    {
        command.Parameters["$id"].Value = id;
        command.Parameters["$doc"].Value = document;
        return command;
    }

    private SqliteCommand Prepare(string sql, bool withDocument, bool withPatch)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.Add("$tenant", SqliteType.Text).Value = StorageSchema.DefaultTenant;
        command.Parameters.Add("$id", SqliteType.Text).Value = "";
        command.Parameters.Add("$now", SqliteType.Integer).Value = 0L;
        if (withDocument)
        {
            command.Parameters.Add("$types", SqliteType.Text).Value = StorageSchema.VehicleTypes;
            command.Parameters.Add("$doc", SqliteType.Blob).Value = Array.Empty<byte>();
        }

        if (withPatch)
        {
            command.Parameters.Add("$patch", SqliteType.Text).Value = "{}";
        }

        command.Prepare();
        return command;
    }
}
