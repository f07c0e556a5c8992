using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Machi.Broker.Storage;

/// <summary>
/// The embedded backend's value, attribute-name and geo indexes, held in memory: q comparisons, attribute names
/// (attrs, q's "has attribute") and geo-queries find their candidates here, not in SQLite. As database rows, a batch
/// of new entities put one value row per attribute value and one R*Tree box per GeoProperty into B-trees ordered by
/// value and by place, so nearly every row dirtied a page of its own in the write-ahead log; without them the single
/// writer stores a 1,000-entity batch about twice as fast (bench/README, session 16). The attribute names' rows (eight
/// an entity of the bench) followed in session 21 (+19 %). They are rebuilt from the entity rows at start, so nothing
/// in them has to survive a crash.
///
/// The entries only narrow the candidates: the evaluator decides on each entity as the query's read snapshot holds it.
/// So the index may hold more than a snapshot but never less. A write's entries are added before its transaction
/// commits; entries it replaced are removed only when no query that began before that commit is still running
/// (<see cref="BeginRead"/>), and none at all if the transaction fails.
/// </summary>
internal sealed class MemoryQueryIndex
{
    private readonly ConcurrentDictionary<(string Tenant, long Attr), ValueRun> _values = new();
    private readonly ConcurrentDictionary<string, GeoGrid> _geo = new(StringComparer.Ordinal);

    // Writer thread only: what the transaction in progress added (taken back if it fails) and removed (removed once no
    // query can still need it).
    private readonly List<Entry> _added = [];
    private readonly List<StagedValue> _staged = [];
    private readonly List<Entry> _stagedBoxes = [];
    private readonly Dictionary<ValueRun, List<long>> _stagedNames = [];
    private int _stagedNameCount;
    private readonly HashSet<Entry> _removed = [];

    // Writer thread only: removals waiting for older queries, with the commit that made each (a re-add cancels one).
    private readonly Dictionary<Entry, long> _pending = [];
    private readonly Queue<(long Commit, Entry[] Entries)> _waiting = new();

    // Commits counted, and how many running queries began after each count (guarded by _readersGate).
    private readonly object _readersGate = new();
    private readonly Dictionary<long, int> _readers = [];
    private long _commits;

    /// <summary>Registers a query about to read (call before its first statement opens the snapshot); pass the result to <see cref="EndRead"/>.</summary>
    public long BeginRead()
    {
        lock (_readersGate)
        {
            var since = _commits;
            _readers[since] = _readers.GetValueOrDefault(since) + 1;
            return since;
        }
    }

    public void EndRead(long since)
    {
        lock (_readersGate)
        {
            if (--_readers[since] == 0)
            {
                _readers.Remove(since);
            }
        }
    }

    public void AddValue(string tenant, long attr, object value, long rid) => Add(Value(tenant, attr, value, rid));

    /// <summary>
    /// The index key of an attribute name (<paramref name="term"/> its term id): a run whose entries all hold
    /// <see cref="Present"/>, so its rids come in rid order. Names share the value runs' keys and their handling
    /// (staged, removed once no query needs them, taken back with a failed transaction); term ids stay far below it.
    /// </summary>
    public static long NameKey(long term) => NameKeys + term;

    /// <summary>Whether <paramref name="key"/> is an attribute name's (<see cref="NameKey"/>) rather than a value's.</summary>
    public static bool IsNameKey(long key) => key >= NameKeys;

    private const long NameKeys = 1L << 48;

    /// <summary>The one value of a name's entries.</summary>
    private static readonly IndexValue Present = IndexValue.Of(0L);

    /// <summary>Indexes that the entity <paramref name="rid"/> has the attribute named by <paramref name="term"/>.</summary>
    public void AddName(string tenant, long term, long rid) => Add(new(Run(tenant, NameKey(term)), Present, rid, null, default));

    /// <summary><see cref="AddName"/> for an entity new in this transaction, added with the staged values (<see cref="StageValue"/>).</summary>
    public void StageName(string tenant, long term, long rid)
    {
        // Kept by name, in staging (rid) order: each goes at its run's end with no sort.
        var run = Run(tenant, NameKey(term));
        if (!_stagedNames.TryGetValue(run, out var rids))
        {
            _stagedNames[run] = rids = [];
        }

        rids.Add(rid);
        _stagedNameCount++;
    }

    public void RemoveName(string tenant, long term, long rid) => _removed.Add(new(Run(tenant, NameKey(term)), Present, rid, null, default));

    /// <summary>The rids of the entities with any of the attribute names <paramref name="terms"/>, name after name, each in rid order.</summary>
    public IRidSource Names(string tenant, IEnumerable<long> terms) =>
        Values(tenant, [.. terms.Select(t => ValueRange.Equal(NameKey(t), Present))]);

    /// <summary>The term ids of the attribute names a tenant's entities have (or had: a run may be empty).</summary>
    public IEnumerable<long> NameTerms(string tenant) =>
        _values.Keys.Where(k => k.Tenant == tenant && IsNameKey(k.Attr)).Select(k => k.Attr - NameKeys);

    /// <summary>
    /// Adds a value entry of an entity new in this transaction with the others at <see cref="AddStaged"/>, in order:
    /// each entry is then next to the one before it, in the parts of memory it just read.
    /// </summary>
    public void StageValue(string tenant, long attr, IndexValue value, long rid) =>
        _staged.Add(new(Run(tenant, attr), value, rid));

    /// <summary>Adds a new entity's boxes (numbered as <see cref="AddBoxes"/> numbers them) with the staged values.</summary>
    public void StageBoxes(string tenant, long rid, List<IndexedBox> boxes) => _stagedBoxes.AddRange(BoxEntries(tenant, rid, boxes));

    /// <summary>How many entries wait for <see cref="AddStaged"/>.</summary>
    public int StagedCount => _staged.Count + _stagedBoxes.Count + _stagedNameCount;

    /// <summary>
    /// Adds the staged entries (before anything else changes those entities, and before the commit). It may run on
    /// another thread than the writer's, while the writer leaves this index alone.
    /// </summary>
    public void AddStaged()
    {
        // Only where an entry lands depends on the order, not whether it lands right, so the order is a cheap one: run
        // by run, then by a prefix of the value that never orders two values against their order, then as staged
        // (rid order). Sorting 16-byte keys of numbers took a quarter of what sorting the entries by their values did.
        var staged = CollectionsMarshal.AsSpan(_staged);
        var order = ArrayPool<StagedKey>.Shared.Rent(staged.Length);
        for (var i = 0; i < staged.Length; i++)
        {
            order[i] = new(((ulong)(ushort)staged[i].Run.Number << 48) | staged[i].Value.Prefix, i);
        }

        order.AsSpan(0, staged.Length).Sort();
        foreach (var key in order.AsSpan(0, staged.Length))
        {
            var (run, value, rid) = staged[key.Index];
            Add(new(run, value, rid, null, default));
        }

        ArrayPool<StagedKey>.Shared.Return(order);

        foreach (var box in _stagedBoxes)
        {
            Add(box);
        }

        foreach (var (run, rids) in _stagedNames)
        {
            foreach (var rid in rids)
            {
                Add(new(run, Present, rid, null, default));
            }

            rids.Clear();
        }

        _staged.Clear();
        _stagedBoxes.Clear();
        _stagedNameCount = 0;
    }

    public void RemoveValue(string tenant, long attr, object value, long rid) => _removed.Add(Value(tenant, attr, value, rid));

    /// <summary>Adds an entity's boxes (<see cref="BoxEntries"/>).</summary>
    public void AddBoxes(string tenant, long rid, List<IndexedBox> boxes)
    {
        foreach (var entry in BoxEntries(tenant, rid, boxes))
        {
            Add(entry);
        }
    }

    /// <summary>Removes an entity's boxes (numbered as <see cref="AddBoxes"/> numbered them).</summary>
    public void RemoveBoxes(string tenant, long rid, List<IndexedBox> boxes) => _removed.UnionWith(BoxEntries(tenant, rid, boxes));

    /// <summary>The transaction whose entries were added and removed since the last call committed (writer thread).</summary>
    public void Committed()
    {
        _added.Clear();
        long commit;
        long oldest;
        lock (_readersGate)
        {
            commit = ++_commits;
            oldest = _readers.Count == 0 ? long.MaxValue : _readers.Keys.Min();
        }

        if (_removed.Count > 0)
        {
            foreach (var entry in _removed)
            {
                _pending[entry] = commit;
            }

            _waiting.Enqueue((commit, [.. _removed]));
            _removed.Clear();
        }

        // A query that began at count c may read a snapshot from before commit c + 1, so that commit's removals wait for it.
        while (_waiting.TryPeek(out var batch) && batch.Commit <= oldest)
        {
            _waiting.Dequeue();
            foreach (var entry in batch.Entries)
            {
                if (_pending.TryGetValue(entry, out var at) && at == batch.Commit)
                {
                    _pending.Remove(entry);
                    entry.Remove();
                }
            }
        }
    }

    /// <summary>
    /// The transaction in progress failed: its removals never happen, and its new entries (no snapshot ever held them)
    /// go like removed ones, so that no entry leaves an index while a query reads it a part at a time.
    /// </summary>
    public void RolledBack()
    {
        _staged.Clear();
        _stagedBoxes.Clear();
        foreach (var rids in _stagedNames.Values)
        {
            rids.Clear();
        }

        _stagedNameCount = 0;
        _removed.Clear();
        _removed.UnionWith(_added);
        Committed();
    }

    private ValueRun Run(string tenant, long attr) => _values.GetOrAdd((tenant, attr), static _ => new ValueRun());

    private GeoGrid Grid(string tenant) => _geo.GetOrAdd(tenant, static _ => new GeoGrid());

    private Entry Value(string tenant, long attr, object value, long rid) => new(Run(tenant, attr), IndexValue.Of(value), rid, null, default);

    /// <summary>An entity's boxes as entries, the i-th with id rid * <see cref="SqliteEntityStore.GeoSlotsPerEntity"/> + i.</summary>
    private Entry[] BoxEntries(string tenant, long rid, List<IndexedBox> boxes)
    {
        var grid = Grid(tenant);
        var entries = new Entry[boxes.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            var box = boxes[i];
            entries[i] = new(null, default, rid, grid,
                new GeoEntry((rid * SqliteEntityStore.GeoSlotsPerEntity) + i, box.MinLon, box.MaxLon, box.MinLat, box.MaxLat));
        }

        return entries;
    }

    private void Add(Entry entry)
    {
        if (_removed.Count > 0)
        {
            _removed.Remove(entry);
        }

        if (_pending.Count > 0)
        {
            _pending.Remove(entry);
        }

        if (entry.Run?.Add(entry.Value, entry.Rid) ?? entry.Grid!.Add(entry.Box))
        {
            _added.Add(entry);
        }
    }

    /// <summary>The rids of the entries in <paramref name="ranges"/>, range after range, each in (value, rid) order.</summary>
    public IRidSource Values(string tenant, IReadOnlyList<ValueRange> ranges) => new ValueCursor(this, tenant, ranges);

    /// <summary>The rids of the entities with a box that meets the given box (degrees, west ≤ east), in the grid's order (<see cref="GeoGrid.Meeting"/>).</summary>
    public IRidSource Boxes(string tenant, double west, double south, double east, double north) =>
        Grid(tenant).Meeting(west, south, east, north);

    /// <summary>Every value entry and box id of one entity (tests compare them with the entity).</summary>
    internal (List<(long Attr, object Value)> Values, List<long> Boxes, List<long> Names) EntriesOf(string tenant, long rid)
    {
        var values = new List<(long, object)>();
        var names = new List<long>();
        foreach (var ((t, attr), run) in _values)
        {
            if (t != tenant)
            {
                continue;
            }

            if (IsNameKey(attr))
            {
                names.AddRange(run.ValuesOf(rid).Select(_ => attr - NameKeys));
            }
            else
            {
                values.AddRange(run.ValuesOf(rid).Select(v => (attr, v.Boxed)));
            }
        }

        var boxes = _geo.TryGetValue(tenant, out var grid) ? grid.IdsOf(rid) : [];
        return (values, boxes, names);
    }

    /// <summary>A new entity's value entry, waiting for <see cref="AddStaged"/>.</summary>
    private readonly record struct StagedValue(ValueRun Run, IndexValue Value, long Rid);

    /// <summary>A staged entry's place in the order <see cref="AddStaged"/> adds them: key, then staging order.</summary>
    private readonly record struct StagedKey(ulong Key, int Index) : IComparable<StagedKey>
    {
        public int CompareTo(StagedKey other) => Key != other.Key ? Key.CompareTo(other.Key) : Index.CompareTo(other.Index);
    }

    /// <summary>A value entry (Run, Value, Rid) or a box (Grid, Box): what a transaction adds and removes.</summary>
    private readonly record struct Entry(ValueRun? Run, IndexValue Value, long Rid, GeoGrid? Grid, GeoEntry Box)
    {
        public void Remove()
        {
            if (Run is not null)
            {
                Run.Remove(Value, Rid);
            }
            else
            {
                Grid!.Remove(Box);
            }
        }
    }

    private sealed class ValueCursor(MemoryQueryIndex index, string tenant, IReadOnlyList<ValueRange> ranges) : IRidSource
    {
        private int _range;
        private (IndexValue Value, long Rid)? _last;

        public int Read(List<long> into, int max)
        {
            var start = into.Count;
            while (_range < ranges.Count && into.Count - start < max)
            {
                var range = ranges[_range];
                if (!index._values.TryGetValue((tenant, range.Attr), out var run) || run.Read(range, ref _last, into, start + max))
                {
                    _range++;
                    _last = null;
                }
            }

            return into.Count - start;
        }
    }
}

/// <summary>Candidate rids, a part at a time.</summary>
internal interface IRidSource
{
    /// <summary>Appends up to <paramref name="max"/> more rids; 0 when there are no more.</summary>
    int Read(List<long> into, int max);
}

/// <summary>Values of one index key (an attribute's term id, negated for instants) between two bounds (null: open).</summary>
internal readonly record struct ValueRange(long Attr, IndexValue? Low, bool LowInclusive, IndexValue? High, bool HighInclusive)
{
    public static ValueRange Equal(long attr, IndexValue value) => new(attr, value, true, value, true);
}

/// <summary>
/// A value as the index orders it, as SQLite orders its storage classes: numbers (integers and reals compared by value)
/// before text (compared by UTF-16 code unit, as the evaluator compares strings). Booleans are the integers 0 and 1.
/// </summary>
internal readonly record struct IndexValue(byte Kind, long Bits, string? Text) : IComparable<IndexValue>
{
    private const byte Integer = 0;
    private const byte Real = 1;
    public const byte TextKind = 2;

    /// <summary>The smallest text: every number is below it.</summary>
    public static readonly IndexValue FirstText = new(TextKind, 0, string.Empty);

    public static IndexValue Of(object value) => value switch
    {
        long l => new(Integer, l, null),
        int i => new(Integer, i, null),
        bool b => new(Integer, b ? 1 : 0, null),
        double d => Math.Floor(d) == d && Math.Abs(d) < 9e18 ? new(Integer, (long)d, null) : new(Real, BitConverter.DoubleToInt64Bits(d), null),
        string s => new(TextKind, 0, s),
        _ => throw new ArgumentException("Not an indexed value: " + value.GetType().Name, nameof(value)),
    };

    public bool IsText => Kind == TextKind;

    /// <summary>
    /// 48 bits that order values as <see cref="CompareTo"/> does wherever they differ (a &lt; b gives Prefix(a) ≤
    /// Prefix(b)): numbers by the top 47 bits of their double in an order-preserving form, texts after every number by
    /// their first three UTF-16 code units.
    /// </summary>
    public ulong Prefix
    {
        get
        {
            if (IsText)
            {
                ulong units = 0;
                for (var i = 0; i < 3; i++)
                {
                    units = (units << 16) | (i < Text!.Length ? Text[i] : 0u);
                }

                return (1UL << 47) | (units >> 1);
            }

            var bits = (ulong)BitConverter.DoubleToInt64Bits(Kind == Integer ? Bits : BitConverter.Int64BitsToDouble(Bits));
            return ((bits & (1UL << 63)) != 0 ? ~bits : bits | (1UL << 63)) >> 17;
        }
    }

    public object Boxed => Kind switch
    {
        Integer => Bits,
        Real => BitConverter.Int64BitsToDouble(Bits),
        _ => Text!,
    };

    public int CompareTo(IndexValue other)
    {
        if (IsText || other.IsText)
        {
            return IsText && other.IsText ? string.CompareOrdinal(Text, other.Text) : IsText ? 1 : -1;
        }

        return (Kind, other.Kind) switch
        {
            (Integer, Integer) => Bits.CompareTo(other.Bits),
            (Real, Real) => BitConverter.Int64BitsToDouble(Bits).CompareTo(BitConverter.Int64BitsToDouble(other.Bits)),
            (Integer, _) => Mixed(Bits, BitConverter.Int64BitsToDouble(other.Bits)),
            _ => -Mixed(other.Bits, BitConverter.Int64BitsToDouble(Bits)),
        };
    }

    /// <summary>An integer against a real, exactly (a long does not fit a double's mantissa).</summary>
    private static int Mixed(long integer, double real)
    {
        if (real >= 9.3e18)
        {
            return -1;
        }

        if (real <= -9.3e18)
        {
            return 1;
        }

        var floor = Math.Floor(real);
        var whole = (long)floor;
        return integer < whole ? -1 : integer > whole ? 1 : real > floor ? -1 : 0;
    }
}

/// <summary>
/// One index key's (value, rid) entries in order, in chunks of at most 128 (an insert moves at most one chunk's tail).
/// An entry holds no reference (a text is a number in the run's table of texts), so the garbage collector never
/// looks inside a chunk however many there are. Each call locks the run: the writer changes it while queries read it
/// a part at a time.
/// </summary>
internal sealed class ValueRun
{
    private const int ChunkSize = 128;
    private static int s_numbered;
    private readonly List<Chunk> _chunks = [];

    // Each chunk's last entry, side by side: finding the chunk reads one array, not a line of each chunk it passes.
    private readonly List<Slot> _lasts = [];
    private readonly List<string?> _texts = [];
    private readonly List<int> _textUses = [];
    private readonly Dictionary<string, int> _textIds = new(StringComparer.Ordinal);
    private readonly Stack<int> _freeTexts = new();

    // Where the last entry was added (its chunk, -1 for none, and index): entries added in order each go just after
    // the one before, found with two comparisons instead of two binary searches.
    private int _fingerChunk = -1;
    private int _fingerIndex;

    /// <summary>Tells runs apart in a sort.</summary>
    public int Number { get; } = Interlocked.Increment(ref s_numbered);

    public bool Add(IndexValue value, long rid)
    {
        lock (_chunks)
        {
            if (_chunks.Count == 0)
            {
                _chunks.Add(new Chunk());
                _lasts.Add(default);
            }

            var (c, i) = NextToFinger(value, rid) ?? Find(value, rid);
            var chunk = _chunks[c];
            if (i < chunk.Count && Compare(chunk.Items[i], value, rid) == 0)
            {
                return false;
            }

            if (i == 0 && c > 0)
            {
                // Between two chunks: at the end of the one before.
                chunk = _chunks[--c];
                i = chunk.Count;
            }

            if (chunk.Count == ChunkSize)
            {
                // Split in the middle, or after the last entry when the new one comes after it (entries of new
                // entities often do, at the end of their value's range): the full chunk stays full.
                var keep = i == ChunkSize ? ChunkSize : ChunkSize / 2;
                var upper = new Chunk { Count = ChunkSize - keep };
                Array.Copy(chunk.Items, keep, upper.Items, 0, upper.Count);
                chunk.Count = keep;
                _chunks.Insert(c + 1, upper);
                _lasts.Insert(c + 1, upper.Count > 0 ? upper.Items[upper.Count - 1] : default);
                _lasts[c] = chunk.Items[chunk.Count - 1];
                if (i > keep || keep == ChunkSize)
                {
                    (chunk, i, c) = (upper, i - keep, c + 1);
                }
            }

            Array.Copy(chunk.Items, i, chunk.Items, i + 1, chunk.Count - i);
            chunk.Items[i] = new Slot(value.IsText ? UseText(value.Text!) : value.Bits, checked((int)rid), value.Kind);
            chunk.Count++;
            _lasts[c] = chunk.Items[chunk.Count - 1];
            (_fingerChunk, _fingerIndex) = (c, i);
            return true;
        }
    }

    public void Remove(IndexValue value, long rid)
    {
        lock (_chunks)
        {
            if (_chunks.Count == 0)
            {
                return;
            }

            var (c, i) = Find(value, rid);
            var chunk = _chunks[c];
            if (i >= chunk.Count || Compare(chunk.Items[i], value, rid) != 0)
            {
                return;
            }

            _fingerChunk = -1;

            if (value.IsText)
            {
                ReleaseText((int)chunk.Items[i].Bits);
            }

            chunk.Count--;
            Array.Copy(chunk.Items, i + 1, chunk.Items, i, chunk.Count - i);
            if (chunk.Count > 0)
            {
                _lasts[c] = chunk.Items[chunk.Count - 1];
            }
            else if (_chunks.Count > 1)
            {
                _chunks.RemoveAt(c);
                _lasts.RemoveAt(c);
            }
        }
    }

    /// <summary>
    /// Appends the rids of <paramref name="range"/> after <paramref name="last"/> (null: from its start) until
    /// <paramref name="into"/> holds <paramref name="fill"/>; true when the range is done.
    /// </summary>
    public bool Read(ValueRange range, ref (IndexValue Value, long Rid)? last, List<long> into, int fill)
    {
        lock (_chunks)
        {
            if (_chunks.Count == 0)
            {
                return true;
            }

            var (c, i) = last is { } after ? Find(after.Value, after.Rid + 1)
                : range.Low is { } low ? Find(low, long.MinValue)
                : (0, 0);
            for (; c < _chunks.Count; c++, i = 0)
            {
                var chunk = _chunks[c];
                for (; i < chunk.Count; i++)
                {
                    if (into.Count >= fill)
                    {
                        return false;
                    }

                    var slot = chunk.Items[i];
                    var value = ValueOf(slot);
                    if (range.High is { } high && value.CompareTo(high) is var above && (above > 0 || (above == 0 && !range.HighInclusive)))
                    {
                        return true;
                    }

                    last = (value, slot.Rid);
                    if (!range.LowInclusive && range.Low is { } start && value.CompareTo(start) == 0)
                    {
                        continue;
                    }

                    into.Add(slot.Rid);
                }
            }

            return true;
        }
    }

    public List<IndexValue> ValuesOf(long rid)
    {
        lock (_chunks)
        {
            return [.. _chunks.SelectMany(c => c.Items.Take(c.Count)).Where(e => e.Rid == rid).Select(ValueOf)];
        }
    }

    /// <summary>What <see cref="Find"/> would give, when that is just after the last entry added; else null.</summary>
    private (int Chunk, int Index)? NextToFinger(IndexValue value, long rid)
    {
        if (_fingerChunk < 0)
        {
            return null;
        }

        var chunk = _chunks[_fingerChunk];
        if (_fingerIndex >= chunk.Count || Compare(chunk.Items[_fingerIndex], value, rid) >= 0)
        {
            return null;
        }

        if (_fingerIndex + 1 < chunk.Count)
        {
            return Compare(chunk.Items[_fingerIndex + 1], value, rid) >= 0 ? (_fingerChunk, _fingerIndex + 1) : null;
        }

        // After the chunk's last entry: the next chunk's first place, or the end of the last chunk.
        if (_fingerChunk + 1 == _chunks.Count)
        {
            return (_fingerChunk, chunk.Count);
        }

        return Compare(_chunks[_fingerChunk + 1].Items[0], value, rid) >= 0 ? (_fingerChunk + 1, 0) : null;
    }

    /// <summary>The first position at or after (value, rid): the first chunk whose last entry is not below it.</summary>
    private (int Chunk, int Index) Find(IndexValue value, long rid)
    {
        int lo = 0, hi = _chunks.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (Compare(_lasts[mid], value, rid) < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        var found = _chunks[lo];
        int a = 0, b = found.Count;
        while (a < b)
        {
            var mid = (a + b) >>> 1;
            if (Compare(found.Items[mid], value, rid) < 0)
            {
                a = mid + 1;
            }
            else
            {
                b = mid;
            }
        }

        return (lo, a);
    }

    private int Compare(Slot slot, IndexValue value, long rid)
    {
        var c = ValueOf(slot).CompareTo(value);
        return c != 0 ? c : ((long)slot.Rid).CompareTo(rid);
    }

    private IndexValue ValueOf(Slot slot) => slot.Kind == IndexValue.TextKind
        ? new IndexValue(slot.Kind, 0, _texts[(int)slot.Bits])
        : new IndexValue(slot.Kind, slot.Bits, null);

    private int UseText(string text)
    {
        if (_textIds.TryGetValue(text, out var id))
        {
            _textUses[id]++;
            return id;
        }

        if (_freeTexts.TryPop(out id))
        {
            _texts[id] = text;
            _textUses[id] = 1;
        }
        else
        {
            id = _texts.Count;
            _texts.Add(text);
            _textUses.Add(1);
        }

        _textIds[text] = id;
        return id;
    }

    private void ReleaseText(int id)
    {
        if (--_textUses[id] == 0)
        {
            _textIds.Remove(_texts[id]!);
            _texts[id] = null;
            _freeTexts.Push(id);
        }
    }

    /// <summary>An entry: the value's bits (a text's number in the table) and kind, and the entity's rid (SQLite numbers rows from 1 up: 32 bits hold two billion entities).</summary>
    private readonly record struct Slot(long Bits, int Rid, byte Kind);

    private sealed class Chunk
    {
        public readonly Slot[] Items = new Slot[ChunkSize];
        public int Count;
    }
}

/// <summary>One GeoProperty's box: id is rid * <see cref="SqliteEntityStore.GeoSlotsPerEntity"/> + the name's ordinal.</summary>
internal readonly record struct GeoEntry(long Id, double MinLon, double MaxLon, double MinLat, double MaxLat);

/// <summary>
/// A tenant's boxes on a grid of 0.01° cells (about 1 km here): a box is listed in every cell it touches, or among the
/// wide ones when that would be more than 16 cells; a query looks in the cells its box touches, or at every box when
/// it touches more than 4,096 cells.
/// </summary>
internal sealed class GeoGrid
{
    private const double CellDegrees = 0.01;
    private const int MaxCellsPerBox = 16;
    private const long MaxCellsPerQuery = 4096;

    private readonly Dictionary<long, HashSet<GeoEntry>> _cells = [];
    private readonly HashSet<GeoEntry> _wide = [];

    public bool Add(GeoEntry entry)
    {
        lock (_cells)
        {
            if (Cells(entry) is not var (x0, x1, y0, y1))
            {
                return _wide.Add(entry);
            }

            var added = false;
            for (var x = x0; x <= x1; x++)
            {
                for (var y = y0; y <= y1; y++)
                {
                    if (!_cells.TryGetValue(Key(x, y), out var set))
                    {
                        _cells[Key(x, y)] = set = [];
                    }

                    added |= set.Add(entry);
                }
            }

            return added;
        }
    }

    public void Remove(GeoEntry entry)
    {
        lock (_cells)
        {
            if (Cells(entry) is not var (x0, x1, y0, y1))
            {
                _wide.Remove(entry);
                return;
            }

            for (var x = x0; x <= x1; x++)
            {
                for (var y = y0; y <= y1; y++)
                {
                    if (_cells.TryGetValue(Key(x, y), out var set) && set.Remove(entry) && set.Count == 0)
                    {
                        _cells.Remove(Key(x, y));
                    }
                }
            }
        }
    }

    /// <summary>
    /// The rids of the boxes that meet the given one, cell after cell (nearest the box's middle first), each cell in
    /// its set's order, then the wide ones; an entity may come more than once. Read a part at a time: a cell is taken
    /// up again by skipping what was read of it, which holds because nothing is removed while a query runs
    /// (<see cref="MemoryQueryIndex.BeginRead"/>): an entry added meanwhile may only make an entity come twice.
    /// </summary>
    public IRidSource Meeting(double west, double south, double east, double north) => new Cursor(this, west, south, east, north);

    public List<long> IdsOf(long rid)
    {
        lock (_cells)
        {
            return [.. _cells.Values.SelectMany(s => s).Concat(_wide).Where(e => e.Id / SqliteEntityStore.GeoSlotsPerEntity == rid).Select(e => e.Id).Distinct()];
        }
    }

    /// <summary>The cells a box touches, or null when it is a wide one.</summary>
    private static (int X0, int X1, int Y0, int Y1)? Cells(GeoEntry e)
    {
        var (x0, x1, y0, y1) = (Cell(e.MinLon), Cell(e.MaxLon), Cell(e.MinLat), Cell(e.MaxLat));
        return (long)(x1 - x0 + 1) * (y1 - y0 + 1) > MaxCellsPerBox ? null : (x0, x1, y0, y1);
    }

    private sealed class Cursor(GeoGrid grid, double west, double south, double east, double north) : IRidSource
    {
        private List<long>? _cells;
        private int _cell;
        private int _read;

        public int Read(List<long> into, int max)
        {
            var start = into.Count;
            lock (grid._cells)
            {
                _cells ??= Cells();
                while (_cell <= _cells.Count && into.Count - start < max)
                {
                    var set = _cell == _cells.Count ? grid._wide : grid._cells.GetValueOrDefault(_cells[_cell]);
                    if (set is null || !Take(set, into, start + max))
                    {
                        (_cell, _read) = (_cell + 1, 0);
                    }
                }
            }

            return into.Count - start;
        }

        /// <summary>Appends the next rids of one cell up to <paramref name="fill"/>; false when the cell is done.</summary>
        private bool Take(HashSet<GeoEntry> set, List<long> into, int fill)
        {
            var skipped = 0;
            foreach (var e in set)
            {
                if (skipped++ < _read)
                {
                    continue;
                }

                if (into.Count >= fill)
                {
                    return true;
                }

                _read++;
                if (e.MaxLat >= south && e.MinLat <= north && e.MaxLon >= west && e.MinLon <= east)
                {
                    into.Add(e.Id / SqliteEntityStore.GeoSlotsPerEntity);
                }
            }

            return false;
        }

        private List<long> Cells()
        {
            var (x0, x1, y0, y1) = (Cell(west), Cell(east), Cell(south), Cell(north));
            if ((long)(x1 - x0 + 1) * (y1 - y0 + 1) > MaxCellsPerQuery)
            {
                var all = grid._cells.Keys.ToList();
                all.Sort();
                return all;
            }

            // Nearest the middle first: a near query's box holds its circle, whose middle cells hold the entities
            // the evaluator keeps, so a page fills before the corners are read.
            var (mx, my) = ((west + east) / 2 / CellDegrees, (south + north) / 2 / CellDegrees);
            var cells = new List<(double Distance, long Key)>();
            for (var x = x0; x <= x1; x++)
            {
                for (var y = y0; y <= y1; y++)
                {
                    var (dx, dy) = (x + 0.5 - mx, y + 0.5 - my);
                    cells.Add(((dx * dx) + (dy * dy), Key(x, y)));
                }
            }

            cells.Sort();
            return cells.ConvertAll(c => c.Key);
        }
    }

    private static int Cell(double degrees) => (int)Math.Floor(Math.Clamp(degrees, -400, 400) / CellDegrees);

    private static long Key(int x, int y) => ((long)x << 32) | (uint)y;
}
