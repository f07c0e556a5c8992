using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;

namespace Machi.Broker.Temporal;

/// <summary>The instances of one aggregation period [Start, End).</summary>
internal sealed record AggregationPeriod(DateTimeOffset Start, DateTimeOffset End, List<string> Values);

/// <summary>
/// Aggregation of attribute values over periods (clause 4.5.19). Periods start at timeAt (after, between) or at
/// the first instance (before, no timerel) and last aggrPeriodDuration each; PT0S is one period over the whole
/// range, ending at endTimeAt (between), timeAt (before) or just after the last instance. Only periods holding
/// instances are returned. totalCount and distinctCount count every value (distinct by its JSON); the others
/// use the numeric values (booleans as 0/1 are not numbers) and give null where a period has none. stddev is the
/// sample standard deviation (n − 1; 0 for one value).
/// </summary>
internal static class Aggregation
{
    private const int MaxPeriods = 100_000;

    public static string Name(AggregationMethod method) => method switch
    {
        AggregationMethod.TotalCount => "totalCount",
        AggregationMethod.DistinctCount => "distinctCount",
        AggregationMethod.Sum => "sum",
        AggregationMethod.Avg => "avg",
        AggregationMethod.Min => "min",
        AggregationMethod.Max => "max",
        AggregationMethod.Stddev => "stddev",
        _ => "sumsq",
    };

    /// <param name="rows">One series, oldest first.</param>
    public static List<AggregationPeriod> Periods(List<HistoryRow> rows, TemporalQuery query)
    {
        var periods = new List<AggregationPeriod>();
        if (rows.Count == 0)
        {
            return periods;
        }

        var times = rows.ConvertAll(r => r.Time(query.Property));
        var origin = query.Relation is TimeRelation.After or TimeRelation.Between ? query.TimeAt : times.Min();
        if (query.Period.IsZero)
        {
            var end = query.Relation switch
            {
                TimeRelation.Between => query.EndTimeAt,
                TimeRelation.Before => query.TimeAt,
                _ => times.Max().AddTicks(1),
            };
            periods.Add(new AggregationPeriod(origin, end, rows.ConvertAll(r => r.Value)));
            return periods;
        }

        var byStart = new SortedDictionary<DateTimeOffset, AggregationPeriod>();
        if (query.Period.IsFixed)
        {
            var span = query.Period.Span.Ticks;
            for (var i = 0; i < rows.Count; i++)
            {
                var index = (times[i] - origin).Ticks / span;
                var start = origin.AddTicks(index * span);
                if (!byStart.TryGetValue(start, out var period))
                {
                    byStart[start] = period = new AggregationPeriod(start, start.AddTicks(span), []);
                }

                period.Values.Add(rows[i].Value);
            }

            return [.. byStart.Values];
        }

        // Calendar periods (months, years) differ in length: step through them.
        var order = Enumerable.Range(0, rows.Count).OrderBy(i => times[i]).ToList();
        var cursor = origin;
        var next = query.Period.AddTo(cursor);
        var steps = 0;
        AggregationPeriod? current = null;
        foreach (var i in order)
        {
            while (times[i] >= next)
            {
                cursor = next;
                next = query.Period.AddTo(cursor);
                current = null;
                if (++steps > MaxPeriods)
                {
                    throw NgsiException.BadData($"aggrPeriodDuration is too short for this time range (more than {MaxPeriods} periods).");
                }
            }

            if (current is null)
            {
                current = new AggregationPeriod(cursor, next, []);
                periods.Add(current);
            }

            current.Values.Add(rows[i].Value);
        }

        return periods;
    }

    public static void Write(Utf8JsonWriter w, AggregationMethod method, List<string> values)
    {
        switch (method)
        {
            case AggregationMethod.TotalCount:
                w.WriteNumberValue(values.Count);
                return;
            case AggregationMethod.DistinctCount:
                w.WriteNumberValue(values.Distinct(StringComparer.Ordinal).Count());
                return;
        }

        var numbers = new List<double>(values.Count);
        foreach (var value in values)
        {
            if (JsonNode.Parse(value) is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
            {
                numbers.Add(v.GetValue<double>());
            }
        }

        if (numbers.Count == 0)
        {
            w.WriteNullValue();
            return;
        }

        var result = method switch
        {
            AggregationMethod.Sum => numbers.Sum(),
            AggregationMethod.Avg => numbers.Average(),
            AggregationMethod.Min => numbers.Min(),
            AggregationMethod.Max => numbers.Max(),
            AggregationMethod.Sumsq => numbers.Sum(n => n * n),
            _ => StandardDeviation(numbers),
        };
        w.WriteNumberValue(result);
    }

    private static double StandardDeviation(List<double> numbers)
    {
        if (numbers.Count < 2)
        {
            return 0;
        }

        var mean = numbers.Average();
        return Math.Sqrt(numbers.Sum(n => (n - mean) * (n - mean)) / (numbers.Count - 1));
    }
}
