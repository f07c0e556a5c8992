using CsCheck;
using Machi.Broker.Storage;

namespace Machi.Broker.Tests.Storage;

/// <summary>
/// The in-memory value and geo indexes of the embedded backend against plain models: random adds and removals, then
/// every range read a part at a time (as a query reads it) gives exactly the model's entries in (value, rid) order, and
/// a query that began before a commit keeps the entries that commit replaced until it ends.
/// </summary>
public sealed class MemoryQueryIndexTests
{
    // Few values and rids, so that adds hit existing entries, removals find them, and chunks split and empty.
    private static readonly Gen<object> Value = Gen.OneOf<object>(
        Gen.Long[-3, 40].Select(l => (object)l),
        Gen.Int[-30, 400].Select(i => (object)(i / 10.0)),
        Gen.OneOfConst<object>("", "a", "b", "b2", "会津", "\uFF03", "😀", "z"));

    private static readonly Gen<(bool Add, object Value, int Rid)[]> Operations =
        Gen.Select(Gen.Int[0, 3], Value, Gen.Int[1, 60], (op, value, rid) => (op > 0, value, rid)).Array[0, 1500];

    private static readonly Gen<IndexValue?> Bound = Gen.Frequency((1, Gen.Const((IndexValue?)null)), (4, Value.Select(v => (IndexValue?)IndexValue.Of(v))));

    private static readonly Gen<ValueRange> Range = Gen.Select(Bound, Gen.Bool, Bound, Gen.Bool, (low, li, high, hi) => new ValueRange(1, low, li, high, hi));

    [Fact]
    public void A_run_reads_back_exactly_its_entries_in_value_then_rid_order_a_part_at_a_time() =>
        Gen.Select(Operations, Range, Gen.Int[1, 300]).Sample(CheckRun, iter: 400);

    [Fact]
    public void A_run_fed_ascending_stretches_as_a_batch_feeds_it_reads_back_the_same()
    {
        // Adds sorted within stretches of up to 80, as AddStaged feeds a run: most go just after the entry before (the
        // run's finger), across chunk ends and splits, with removals between the stretches.
        var order = Comparer<(bool Add, object Value, int Rid)>.Create((a, b) =>
            IndexValue.Of(a.Value).CompareTo(IndexValue.Of(b.Value)) is var c && c != 0 ? c : a.Rid.CompareTo(b.Rid));
        var stretched = Gen.Select(Operations, Gen.Int[1, 80], (operations, stretch) =>
        {
            for (var start = 0; start < operations.Length; start += stretch)
            {
                var length = Math.Min(stretch, operations.Length - start);
                if (Array.TrueForAll(operations[start..(start + length)], o => o.Add))
                {
                    Array.Sort(operations, start, length, order);
                }
            }

            return operations;
        });
        Gen.Select(stretched, Range, Gen.Int[1, 300]).Sample(CheckRun, iter: 400);
    }

    [Fact]
    public void A_values_prefix_never_orders_two_values_against_their_order()
    {
        var wide = Gen.OneOf<object>(
            Value,
            Gen.Long.Select(l => (object)l),
            Gen.Double.Where(double.IsFinite).Select(d => (object)d),
            Gen.String.Select(t => (object)t));
        Gen.Select(wide, wide).Sample((a, b) =>
        {
            var (x, y) = (IndexValue.Of(a), IndexValue.Of(b));
            var c = x.CompareTo(y);
            Assert.True(c >= 0 || x.Prefix <= y.Prefix, $"{a} < {b} but prefix {x.Prefix} > {y.Prefix}");
            Assert.True(c <= 0 || x.Prefix >= y.Prefix, $"{a} > {b} but prefix {x.Prefix} < {y.Prefix}");
        }, iter: 20_000);
    }

    private static void CheckRun((bool Add, object Value, int Rid)[] operations, ValueRange range, int part)
    {
        var run = new ValueRun();
        var model = new SortedSet<(IndexValue Value, long Rid)>(Comparer<(IndexValue Value, long Rid)>.Create((a, b) =>
            a.Value.CompareTo(b.Value) is var c && c != 0 ? c : a.Rid.CompareTo(b.Rid)));
        foreach (var (add, value, rid) in operations)
        {
            var v = IndexValue.Of(value);
            if (add)
            {
                Assert.Equal(model.Add((v, rid)), run.Add(v, rid));
            }
            else
            {
                run.Remove(v, rid);
                model.Remove((v, rid));
            }
        }

        var expected = model.Where(e => Inside(e.Value, range)).Select(e => e.Rid).ToList();
        var read = new List<long>();
        (IndexValue Value, long Rid)? last = null;
        var done = false;
        while (!done)
        {
            var before = read.Count;
            done = run.Read(range, ref last, read, read.Count + part);
            Assert.True(done || read.Count - before == part);
        }

        Assert.Equal(expected, read);
    }

    [Fact]
    public void Boxes_found_are_exactly_the_boxes_that_meet_the_query_box_read_a_part_at_a_time()
    {
        var coordinate = Gen.Int[0, 300].Select(i => 139.9 + (i / 1000.0));
        var box = Gen.Select(coordinate, Gen.Int[0, 30], coordinate, Gen.Int[0, 30], (lon, w, lat, h) => (Lon: lon, W: w * (w > 25 ? 0.02 : 0.001), Lat: lat - 102.4, H: h * 0.001));
        Gen.Select(Gen.Select(Gen.Bool, Gen.Int[1, 40], box).Array[0, 300], box, Gen.Int[1, 50]).Sample((operations, query, part) =>
        {
            var grid = new GeoGrid();
            var model = new HashSet<GeoEntry>();
            foreach (var (add, rid, b) in operations)
            {
                var entry = new GeoEntry(rid * SqliteEntityStore.GeoSlotsPerEntity, b.Lon, b.Lon + b.W, b.Lat, b.Lat + b.H);
                if (add)
                {
                    grid.Add(entry);
                    model.Add(entry);
                }
                else
                {
                    grid.Remove(entry);
                    model.Remove(entry);
                }
            }

            var (west, east, south, north) = (query.Lon, query.Lon + query.W, query.Lat, query.Lat + query.H);
            var expected = model.Where(e => e.MaxLat >= south && e.MinLat <= north && e.MaxLon >= west && e.MinLon <= east)
                .Select(e => e.Id / SqliteEntityStore.GeoSlotsPerEntity).Distinct().Order().ToList();
            // Read a part at a time, as a query does; an entity may come twice (a box in two cells), never not at all.
            var cursor = grid.Meeting(west, south, east, north);
            var read = new List<long>();
            while (cursor.Read(read, part) is var n && n > 0)
            {
                Assert.True(n <= part);
            }

            Assert.Equal(expected, read.Distinct().Order().ToList());
        }, iter: 300);
    }

    [Fact]
    public void A_replaced_value_stays_findable_until_the_queries_that_began_before_its_commit_end()
    {
        var index = new MemoryQueryIndex();
        index.AddValue("", 7, 4L, 1);
        index.Committed();

        var query = index.BeginRead();
        index.RemoveValue("", 7, 4L, 1);
        index.AddValue("", 7, 5L, 1);
        index.Committed();

        // The query may read the snapshot from before the change: it still finds the old value.
        Assert.Equal([1L], Rids(index, 4L));
        Assert.Equal([1L], Rids(index, 5L));

        index.EndRead(query);
        var later = index.BeginRead();
        index.Committed();
        Assert.Empty(Rids(index, 4L));
        Assert.Equal([1L], Rids(index, 5L));
        index.EndRead(later);
    }

    [Fact]
    public void A_value_removed_and_added_again_before_the_removal_is_safe_is_kept()
    {
        var index = new MemoryQueryIndex();
        index.AddValue("", 7, "a", 1);
        index.Committed();

        var query = index.BeginRead();
        index.RemoveValue("", 7, "a", 1);
        index.Committed();
        index.AddValue("", 7, "a", 1);
        index.Committed();
        index.EndRead(query);
        index.Committed();

        Assert.Equal([1L], Rids(index, "a"));
    }

    [Fact]
    public void A_transaction_that_failed_leaves_neither_its_new_entries_nor_its_removals()
    {
        var index = new MemoryQueryIndex();
        index.AddValue("", 7, 1.5, 1);
        index.AddBoxes("", 1, [new IndexedBox("p", 139.9, 139.9, 37.5, 37.5)]);
        index.Committed();

        index.RemoveValue("", 7, 1.5, 1);
        index.AddValue("", 7, 2.5, 1);
        index.StageValue("", 7, IndexValue.Of(2.5), 2);
        index.AddBoxes("", 2, [new IndexedBox("p", 139.9, 139.9, 37.5, 37.5)]);
        index.RolledBack();
        index.Committed();

        Assert.Equal([1L], Rids(index, 1.5));
        Assert.Empty(Rids(index, 2.5));
        Assert.Equal([1L], Read(index.Boxes("", 139.8, 37.4, 140.0, 37.6)));
    }

    private static bool Inside(IndexValue value, ValueRange range) =>
        (range.Low is not { } low || value.CompareTo(low) is var a && (a > 0 || (a == 0 && range.LowInclusive)))
        && (range.High is not { } high || value.CompareTo(high) is var b && (b < 0 || (b == 0 && range.HighInclusive)));

    private static List<long> Rids(MemoryQueryIndex index, object value) =>
        Read(index.Values("", [ValueRange.Equal(7, IndexValue.Of(value))]));

    private static List<long> Read(IRidSource source)
    {
        var rids = new List<long>();
        while (source.Read(rids, 2) > 0)
        {
        }

        return rids;
    }
}
