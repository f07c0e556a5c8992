using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Machi.Broker.Storage.Postgres;

/// <summary>The change log (entity_changes): read in order, waited on (LISTEN/NOTIFY, polled as a backstop), pruned.</summary>
internal sealed partial class PostgresEntityStore
{
    public long LastChangeSeq => Volatile.Read(ref _lastChangeSeq);

    public async ValueTask<IReadOnlyList<EntityChange>> ReadChangesAsync(long afterSeq, int max, CancellationToken cancellationToken)
    {
        await using var cmd = DataSource.CreateCommand("SELECT seq, tenant, entity_id, kind, before, after, at FROM entity_changes WHERE seq > $1 ORDER BY seq LIMIT $2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = afterSeq });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (long)max });
        var changes = new List<EntityChange>();
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            changes.Add(new EntityChange(
                r.GetInt64(0),
                r.GetString(1),
                r.GetString(2),
                (ChangeKind)r.GetInt16(3),
                r.IsDBNull(4) ? null : r.GetFieldValue<byte[]>(4),
                r.IsDBNull(5) ? null : r.GetFieldValue<byte[]>(5),
                new DateTimeOffset(r.GetInt64(6), TimeSpan.Zero)));
        }

        return changes;
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

    public async ValueTask PruneChangesAsync(long throughSeq, CancellationToken cancellationToken)
    {
        await using var cmd = DataSource.CreateCommand("DELETE FROM entity_changes WHERE seq <= $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = throughSeq });
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Makes committed changes (this node's or, through NOTIFY, another's) visible to waiting consumers.</summary>
    private void PublishChanges(long lastSeq)
    {
        while (true)
        {
            var known = Volatile.Read(ref _lastChangeSeq);
            if (lastSeq <= known)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _lastChangeSeq, lastSeq, known) == known)
            {
                break;
            }
        }

        var previous = Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        previous.TrySetResult();
    }

    /// <summary>
    /// Listens for the changes every node's writer announces at commit; every <see cref="PollInterval"/> without one
    /// it reads the last seq itself, so a lost connection or notification delays a consumer, never strands it.
    /// </summary>
    private async Task ListenLoop(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await using var connection = await DataSource.OpenConnectionAsync(stopping).ConfigureAwait(false);
                connection.Notification += (_, e) =>
                {
                    if (e.Channel == SubscriptionChannel)
                    {
                        SubscriptionsChanged?.Invoke();
                    }
                    else if (e.Channel == RegistrationChannel)
                    {
                        RegistrationsChanged?.Invoke();
                    }
                    else if (e.Channel == ConsentChannel)
                    {
                        ConsentsChanged?.Invoke();
                    }
                    else if (long.TryParse(e.Payload, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seq))
                    {
                        PublishChanges(seq);
                    }
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {ChangeChannel}; LISTEN {SubscriptionChannel}; LISTEN {RegistrationChannel}; LISTEN {ConsentChannel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stopping).ConfigureAwait(false);
                }

                // Announcements made while this node was not listening are lost: read the subscriptions again.
                SubscriptionsChanged?.Invoke();
                RegistrationsChanged?.Invoke();
                ConsentsChanged?.Invoke();

                while (true)
                {
                    PublishChanges(await MaxSeqAsync(stopping).ConfigureAwait(false));
                    while (await connection.WaitAsync(PollInterval, stopping).ConfigureAwait(false))
                    {
                    }
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.IO.IOException)
            {
                _logger.LogWarning(ex, "Listening for changes failed; retrying");
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
