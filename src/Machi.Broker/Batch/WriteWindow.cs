namespace Machi.Broker.Batch;

/// <summary>
/// The writes one request has handed to the store that have not settled yet (on disk, or failed), kept to at most
/// <paramref name="ahead"/>: before making more, the request waits for the oldest. A batch's body is then parsed only
/// that far ahead of the single writer. Without the bound, four clients' 1,000-entity batches were parsed as fast as the
/// request threads went, and their prepared rows (~2.5 KB an entity, up to ~4,000 entities) waited in the writer's
/// queue; every collection of the young generation found them alive and copied them into the next, and the pauses took
/// ~9 % of the time (bench/README, session 25).
/// </summary>
internal sealed class WriteWindow(int ahead)
{
    private readonly Queue<Task> _unsettled = new();

    /// <summary>Adds a write the request made (its task settles when the write is on disk or has failed).</summary>
    public void Add(Task write) => _unsettled.Enqueue(write);

    /// <summary>
    /// Waits until no more than <c>ahead</c> of the added writes are unsettled. Never throws: a write's outcome is read
    /// by whoever holds its task.
    /// </summary>
    public async ValueTask MakeRoomAsync()
    {
        while (_unsettled.Count > ahead)
        {
            await _unsettled.Dequeue().ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }
}
