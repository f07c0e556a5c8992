namespace Machi.Ngsi.JsonLd;

/// <summary>How often and how recently a stored @context was used (numberOfHits and lastUsage in /jsonldContexts).</summary>
internal sealed class ContextUsage
{
    private long _hits;
    private long _lastUsageTicks;

    public long Hits => Volatile.Read(ref _hits);

    public DateTimeOffset? LastUsage =>
        Volatile.Read(ref _lastUsageTicks) is var ticks and > 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    public void Touch(DateTimeOffset now)
    {
        Interlocked.Increment(ref _hits);
        Volatile.Write(ref _lastUsageTicks, now.UtcTicks);
    }
}
