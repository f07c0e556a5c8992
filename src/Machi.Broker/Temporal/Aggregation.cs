using System.Globalization;
using System.Text.Json;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Broker.Temporal;

/// <summary>What one aggregation period [Start, End) holds: counts and running sums, no instance kept.</summary>
internal sealed class AggregationPeriod(DateTimeOffset start, DateTimeOffset end, bool distinct)
{
    public DateTimeOffset Start { get; } = start;

    /// <summary>Set once more for a PT0S period without an end of its own, when the last instance is known.</summary>
    public DateTimeOffset End { get; internal set; } = end;

    public long Count { get; private set; }

    public long Numbers { get; private set; }

    public double Sum { get; private set; }

    public double SumSq { get; private set; }

    public double Min { get; private set; } = double.PositiveInfinity;

    public double Max { get; private set; } = double.NegativeInfinity;

    // Welford's running mean and sum of squared differences: a standard deviation without cancellation.
    private double _mean;
    private double _m2;

    public HashSet<string>? Distinct { get; } = distinct ? new HashSet<string>(StringComparer.Ordinal) : null;

    public double StandardDeviation => Numbers < 2 ? 0 : Math.Sqrt(_m2 / (Numbers - 1));

    public void Add(ReadOnlySpan<byte> json)
    {
        Count++;
        Distinct?.Add(System.Text.Encoding.UTF8.GetString(json));
        if (!Aggregation.TryNumber(json, out var x))
        {
            return;
        }

        Numbers++;
        Sum += x;
        SumSq += x * x;
        Min = Math.Min(Min, x);
        Max = Math.Max(Max, x);
        var delta = x - _mean;
        _mean += delta / Numbers;
        _m2 += delta * (x - _mean);
    }
}

/// <summary>One attribute's (and datasetId's) aggregated history.</summary>
internal sealed class AggregatedSeries(string attr, string? datasetId, AttributeKind kind)
{
    public string Attr { get; } = attr;

    public string? DatasetId { get; } = datasetId;

    public AttributeKind Kind { get; } = kind;

    public List<AggregationPeriod> Periods { get; } = [];

    // The open period of a fixed or calendar duration: its index (fixed) or end (calendar).
    internal long Index { get; set; } = -1;

    internal DateTimeOffset Origin { get; set; }

    internal DateTimeOffset Last { get; set; }

    internal int Steps { get; set; }
}

/// <summary>
/// Aggregates a stream of instances, each attribute's oldest first, into periods as they pass: nothing but the
/// period's sums is kept, so a series of any length costs one pass and no allocation per instance.
/// </summary>
internal sealed class AggregationBuilder(TemporalQuery query)
{
    private const int MaxPeriods = 100_000;

    private readonly List<AggregatedSeries> _series = [];
    private readonly bool _distinct = query.Methods.Contains(AggregationMethod.DistinctCount);
    private AggregatedSeries? _current;

    /// <summary>The series, once every instance has been added.</summary>
    public List<AggregatedSeries> Finish()
    {
        if (query.Period.IsZero && query.Relation is not (TimeRelation.Between or TimeRelation.Before))
        {
            foreach (var series in _series)
            {
                if (series.Periods.Count == 1)
                {
                    // The single period ends just after the last instance, known only now.
                    series.Periods[0].End = series.Last.AddTicks(1);
                }
            }
        }

        return _series;
    }

    /// <param name="deleted">A deletion names the series (and its kind) but adds no value.</param>
    public void Add(string attr, string? datasetId, AttributeKind kind, DateTimeOffset time, ReadOnlySpan<byte> json, bool deleted)
    {
        var series = Find(attr, datasetId, kind);
        if (deleted)
        {
            return;
        }

        PeriodOf(series, time).Add(json);
        series.Last = time;
    }

    private AggregatedSeries Find(string attr, string? datasetId, AttributeKind kind)
    {
        if (_current is { } current && ReferenceEquals(current.Attr, attr) && current.DatasetId == datasetId)
        {
            return current;
        }

        foreach (var series in _series)
        {
            if (series.Attr == attr && series.DatasetId == datasetId)
            {
                return _current = series;
            }
        }

        var created = new AggregatedSeries(attr, datasetId, kind);
        _series.Add(created);
        return _current = created;
    }

    private AggregationPeriod PeriodOf(AggregatedSeries series, DateTimeOffset time)
    {
        if (series.Periods.Count == 0)
        {
            series.Origin = query.Relation is TimeRelation.After or TimeRelation.Between ? query.TimeAt : time;
        }

        if (query.Period.IsZero)
        {
            if (series.Periods.Count == 0)
            {
                var end = query.Relation switch
                {
                    TimeRelation.Between => query.EndTimeAt,
                    TimeRelation.Before => query.TimeAt,
                    _ => time,
                };
                series.Periods.Add(new AggregationPeriod(series.Origin, end, _distinct));
            }

            return series.Periods[0];
        }

        if (query.Period.IsFixed)
        {
            var span = query.Period.Span.Ticks;
            var index = (time - series.Origin).Ticks / span;
            if (index != series.Index)
            {
                series.Index = index;
                var start = series.Origin.AddTicks(index * span);
                series.Periods.Add(new AggregationPeriod(start, start.AddTicks(span), _distinct));
            }

            return series.Periods[^1];
        }

        // Calendar periods (months, years) differ in length: step through them.
        if (series.Periods.Count == 0)
        {
            series.Periods.Add(new AggregationPeriod(series.Origin, query.Period.AddTo(series.Origin), _distinct));
        }

        var open = series.Periods[^1];
        if (time < open.End)
        {
            return open;
        }

        var cursor = open.End;
        var next = query.Period.AddTo(cursor);
        while (time >= next)
        {
            cursor = next;
            next = query.Period.AddTo(cursor);
            if (++series.Steps > MaxPeriods)
            {
                throw NgsiException.BadData($"aggrPeriodDuration is too short for this time range (more than {MaxPeriods} periods).");
            }
        }

        series.Periods.Add(new AggregationPeriod(cursor, next, _distinct));
        return series.Periods[^1];
    }
}

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

    public static void Write(Utf8JsonWriter w, AggregationMethod method, AggregationPeriod period)
    {
        switch (method)
        {
            case AggregationMethod.TotalCount:
                w.WriteNumberValue(period.Count);
                return;
            case AggregationMethod.DistinctCount:
                w.WriteNumberValue(period.Distinct!.Count);
                return;
        }

        if (period.Numbers == 0)
        {
            w.WriteNullValue();
            return;
        }

        w.WriteNumberValue(method switch
        {
            AggregationMethod.Sum => period.Sum,
            AggregationMethod.Avg => period.Sum / period.Numbers,
            AggregationMethod.Min => period.Min,
            AggregationMethod.Max => period.Max,
            AggregationMethod.Sumsq => period.SumSq,
            _ => period.StandardDeviation,
        });
    }

    /// <summary>
    /// The number a stored value (JSON text) holds. JSON's number grammar is a subset of what a Float parse accepts,
    /// and nothing else a stored value can be (a string in quotes, true/false, an object, an array) parses as one.
    /// </summary>
    internal static bool TryNumber(ReadOnlySpan<byte> json, out double number) =>
        double.TryParse(json, NumberStyles.Float, CultureInfo.InvariantCulture, out number) && double.IsFinite(number);
}
