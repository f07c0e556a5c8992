namespace Machi.Broker.Tests.Host;

/// <summary>An <see cref="IBrokerHealth"/> whose answers a test sets.</summary>
internal sealed class FakeBrokerHealth : IBrokerHealth
{
    private int _counts;

    public bool Reachable { get; init; } = true;

    public Exception? Failure { get; init; }

    public long Entities { get; set; }

    /// <summary>When set, counting waits for it (to simulate a slow database).</summary>
    public Task? CountGate { get; set; }

    public int Counts => Volatile.Read(ref _counts);

    public Task<bool> IsDatabaseReachableAsync(CancellationToken cancellationToken) =>
        Failure is null ? Task.FromResult(Reachable) : Task.FromException<bool>(Failure);

    public async Task<long> CountEntitiesAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _counts);
        if (Failure is not null)
        {
            throw Failure;
        }

        if (CountGate is { } gate)
        {
            await gate.WaitAsync(cancellationToken);
        }

        return Entities;
    }
}
