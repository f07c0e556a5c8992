using Machi.Broker.Storage;

namespace Machi.Broker.Temporal;

/// <summary>
/// The instances of an entity's folded creations (<see cref="FoldedCreation"/>) that a read of its history takes in
/// (the attributes asked for, inside the query's time range), in the order of the history's key — attribute term id,
/// the query's time property, instance number — so that a reader streaming the stored rows in that order merges them
/// in with <see cref="Before"/> and <see cref="Rest"/>, and the result is what the rows of a row an instance would give.
/// </summary>
internal sealed class UnfoldedInstances
{
    private readonly List<(long Attr, long Time, long N, HistoryRow Row)> _rows = [];
    private int _next;

    /// <param name="folded">The entity's folded rows: n and instance.</param>
    /// <param name="termId">The term id of an attribute name (every name a creation recorded has one).</param>
    public UnfoldedInstances(IEnumerable<(long N, byte[] Doc)> folded, IReadOnlyCollection<string>? attrs, TemporalQuery query, Func<string, long> termId)
    {
        foreach (var (first, doc) in folded)
        {
            foreach (var (n, row) in FoldedCreation.Unfold(first, doc))
            {
                if (attrs is not null && !attrs.Contains(row.Attr))
                {
                    continue;
                }

                var at = new DateTimeOffset(row.At, TimeSpan.Zero);
                var history = new HistoryRow(row.Attr, row.DatasetId, TemporalHistory.InstanceId(n), row.Kind,
                    row.ObservedAt is { } o ? new DateTimeOffset(o, TimeSpan.Zero) : null, at, at, row.Value, null, Deleted: false)
                {
                    Unfolded = row.Instance,
                };
                var time = history.Time(query.Property);
                if (query.Contains(time))
                {
                    _rows.Add((termId(row.Attr), time.UtcTicks, n, history));
                }
            }
        }

        _rows.Sort(static (a, b) => a.Attr != b.Attr ? a.Attr.CompareTo(b.Attr) : a.Time != b.Time ? a.Time.CompareTo(b.Time) : a.N.CompareTo(b.N));
    }

    /// <summary>Hands <paramref name="take"/> the instances that come before a stored row of this key.</summary>
    public void Before(long attr, long time, long n, Action<HistoryRow> take)
    {
        while (_next < _rows.Count)
        {
            var (a, t, number, row) = _rows[_next];
            if (a > attr || (a == attr && (t > time || (t == time && number > n))))
            {
                return;
            }

            take(row);
            _next++;
        }
    }

    /// <summary>Hands <paramref name="take"/> the instances after the last stored row.</summary>
    public void Rest(Action<HistoryRow> take)
    {
        for (; _next < _rows.Count; _next++)
        {
            take(_rows[_next].Row);
        }
    }
}
