using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>The change log (entity_changes): read in order, waited on, pruned.</summary>
internal sealed partial class SqliteEntityStore
{
    public long LastChangeSeq => Volatile.Read(ref _lastChangeSeq);

    public ValueTask<IReadOnlyList<EntityChange>> ReadChangesAsync(long afterSeq, int max, CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            using var cmd = reader.Connection.CreateCommand();
            cmd.CommandText = "SELECT seq, tenant, entity_id, kind, before, after, at FROM entity_changes WHERE seq > $after ORDER BY seq LIMIT $max";
            cmd.Parameters.AddWithValue("$after", afterSeq);
            cmd.Parameters.AddWithValue("$max", max);
            var changes = new List<EntityChange>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                changes.Add(new EntityChange(
                    r.GetInt64(0),
                    r.GetString(1),
                    r.GetString(2),
                    (ChangeKind)r.GetInt64(3),
                    r.IsDBNull(4) ? null : (byte[])r.GetValue(4),
                    r.IsDBNull(5) ? null : (byte[])r.GetValue(5),
                    new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero)));
            }

            return ValueTask.FromResult<IReadOnlyList<EntityChange>>(changes);
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    public async Task WaitForChangeAsync(long afterSeq, CancellationToken cancellationToken)
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed);
            if (LastChangeSeq > afterSeq)
            {
                return;
            }

            await changed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask PruneChangesAsync(long throughSeq, CancellationToken cancellationToken) =>
        await RunInWriterAsync(
            (connection, tx) =>
            {
                using var cmd = connection.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = "DELETE FROM entity_changes WHERE seq <= $through";
                cmd.Parameters.AddWithValue("$through", throughSeq);
                cmd.ExecuteNonQuery();
            },
            cancellationToken).ConfigureAwait(false);

    /// <summary>Makes the changes of the transaction just committed visible to waiting consumers.</summary>
    private void PublishChanges(long lastSeq)
    {
        if (lastSeq <= Volatile.Read(ref _lastChangeSeq))
        {
            return;
        }

        Volatile.Write(ref _lastChangeSeq, lastSeq);
        var previous = Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        previous.TrySetResult();
    }
}
