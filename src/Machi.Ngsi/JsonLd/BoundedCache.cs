using System.Collections.Concurrent;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// A concurrent cache that holds at most about <c>capacity</c> entries: past it, the least recently used tenth is
/// dropped. Reads cost one dictionary lookup and a timestamp write; trimming is rare and takes a lock.
/// </summary>
internal sealed class BoundedCache<TKey, TValue>(int capacity)
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Entry> _entries = new();
    private readonly Lock _trimLock = new();
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public bool TryGet(TKey key, out TValue value)
    {
        if (_entries.TryGetValue(key, out var entry))
        {
            entry.Touch();
            value = entry.Value;
            return true;
        }

        value = default!;
        return false;
    }

    public void Set(TKey key, TValue value)
    {
        var entry = new Entry(value);
        if (_entries.TryAdd(key, entry))
        {
            if (Interlocked.Increment(ref _count) > capacity)
            {
                Trim();
            }
        }
        else
        {
            _entries[key] = entry;
        }
    }

    public void Clear()
    {
        lock (_trimLock)
        {
            _entries.Clear();
            Volatile.Write(ref _count, 0);
        }
    }

    private void Trim()
    {
        lock (_trimLock)
        {
            var excess = Volatile.Read(ref _count) - (capacity - (capacity / 10));
            if (excess <= 0)
            {
                return;
            }

            foreach (var (key, _) in _entries.OrderBy(e => e.Value.LastUse).Take(excess).ToList())
            {
                if (_entries.TryRemove(key, out _))
                {
                    Interlocked.Decrement(ref _count);
                }
            }
        }
    }

    private sealed class Entry(TValue value)
    {
        private long _lastUse = Environment.TickCount64;

        public TValue Value { get; } = value;

        public long LastUse => Volatile.Read(ref _lastUse);

        public void Touch()
        {
            // Skip the write when the millisecond has not changed: fewer cache-line transfers between cores.
            var now = Environment.TickCount64;
            if (Volatile.Read(ref _lastUse) != now)
            {
                Volatile.Write(ref _lastUse, now);
            }
        }
    }
}
