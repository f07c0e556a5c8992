using System.Globalization;
using System.Text.RegularExpressions;
using Machi.Broker.Query;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Temporal;

internal enum TimeRelation
{
    Before,
    After,
    Between,
}

/// <summary>The time property a temporal query compares (timeproperty=, clause 4.11).</summary>
internal enum TimeProperty
{
    ObservedAt,
    CreatedAt,
    ModifiedAt,
}

/// <summary>The temporal representations of clause 4.5.7 (normalized), 4.5.9 (temporalValues) and 4.5.19 (aggregated).</summary>
internal enum TemporalFormat
{
    Normalized,
    TemporalValues,
    Aggregated,
}

internal enum AggregationMethod
{
    TotalCount,
    DistinctCount,
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Sumsq,
}

/// <summary>
/// The temporal query (clause 4.11, 6.18.3.2): timerel with timeAt (and endTimeAt for between), the time property,
/// lastN, the representation and aggregation. before: t &lt; timeAt; after: t &gt; timeAt; between: timeAt ≤ t &lt; endTimeAt.
/// </summary>
internal sealed record TemporalQuery
{
    public TimeRelation? Relation { get; init; }

    public DateTimeOffset TimeAt { get; init; }

    public DateTimeOffset EndTimeAt { get; init; }

    public TimeProperty Property { get; init; } = TimeProperty.ObservedAt;

    public int? LastN { get; init; }

    public TemporalFormat Format { get; init; } = TemporalFormat.Normalized;

    public IReadOnlyList<AggregationMethod> Methods { get; init; } = [];

    public IsoDuration Period { get; init; } = IsoDuration.Zero;

    public bool Contains(DateTimeOffset t) => Relation switch
    {
        TimeRelation.Before => t < TimeAt,
        TimeRelation.After => t > TimeAt,
        TimeRelation.Between => t >= TimeAt && t < EndTimeAt,
        _ => true,
    };

    /// <summary>timerel, timeAt and endTimeAt (clause 4.11), checked together; timeAt is set whenever the relation is.</summary>
    public static (TimeRelation? Relation, DateTimeOffset? TimeAt, DateTimeOffset? EndTimeAt) ParseRelation(IQueryCollection query)
    {
        var timerel = QueryParameters.Text(query, "timerel");
        var timeAt = Time(query, "timeAt");
        var endTimeAt = Time(query, "endTimeAt");
        TimeRelation? relation = timerel switch
        {
            null => null,
            "before" => TimeRelation.Before,
            "after" => TimeRelation.After,
            "between" => TimeRelation.Between,
            _ => throw NgsiException.BadData($"timerel must be before, after or between, not '{EntityParser.Truncate(timerel)}'."),
        };
        if (relation is null && (timeAt is not null || endTimeAt is not null))
        {
            throw NgsiException.BadData("timeAt and endTimeAt need timerel.");
        }

        if (relation is not null && timeAt is null)
        {
            throw NgsiException.BadData("timerel needs timeAt.");
        }

        if (relation == TimeRelation.Between && (endTimeAt is null || endTimeAt <= timeAt))
        {
            throw NgsiException.BadData("timerel=between needs an endTimeAt later than timeAt.");
        }

        if (relation != TimeRelation.Between && endTimeAt is not null)
        {
            throw NgsiException.BadData("endTimeAt is only allowed with timerel=between.");
        }

        return (relation, timeAt, endTimeAt);
    }

    public static TemporalQuery Parse(IQueryCollection query)
    {
        var (relation, timeAt, endTimeAt) = ParseRelation(query);
        var property = QueryParameters.Text(query, "timeproperty") switch
        {
            null or "observedAt" => TimeProperty.ObservedAt,
            "createdAt" => TimeProperty.CreatedAt,
            "modifiedAt" => TimeProperty.ModifiedAt,
            var other => throw NgsiException.BadData($"timeproperty must be observedAt, createdAt or modifiedAt, not '{EntityParser.Truncate(other)}'."),
        };

        int? lastN = null;
        if (QueryParameters.Text(query, "lastN") is { } lastNText)
        {
            lastN = int.TryParse(lastNText, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1
                ? n
                : throw NgsiException.BadData("lastN must be a whole number ≥ 1.");
        }

        var words = (QueryParameters.Text(query, "options") ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var format = QueryParameters.Text(query, "format");
        var temporalValues = words.Contains("temporalValues") || words.Contains("keyValues") || words.Contains("simplified")
            || format is "temporalValues" or "keyValues" or "simplified";
        var aggregated = words.Contains("aggregatedValues") || format == "aggregatedValues";
        if (temporalValues && aggregated)
        {
            throw NgsiException.BadData("options: temporalValues and aggregatedValues exclude each other.");
        }

        var methods = ParseMethods(QueryParameters.Text(query, "aggrMethods"));
        if (aggregated && methods.Count == 0)
        {
            throw NgsiException.BadData("options=aggregatedValues needs aggrMethods (totalCount, distinctCount, sum, avg, min, max, stddev, sumsq).");
        }

        var periodText = QueryParameters.Text(query, "aggrPeriodDuration");
        var period = periodText is null ? IsoDuration.Zero : IsoDuration.Parse(periodText);
        return new TemporalQuery
        {
            Relation = relation,
            TimeAt = timeAt ?? default,
            EndTimeAt = endTimeAt ?? default,
            Property = property,
            LastN = lastN,
            Format = aggregated ? TemporalFormat.Aggregated : temporalValues ? TemporalFormat.TemporalValues : TemporalFormat.Normalized,
            Methods = methods,
            Period = period,
        };
    }

    private static List<AggregationMethod> ParseMethods(string? text)
    {
        var methods = new List<AggregationMethod>();
        foreach (var word in (text ?? string.Empty).Split(',', StringSplitOptions.TrimEntries))
        {
            if (word.Length == 0 && text is null)
            {
                continue;
            }

            var method = word switch
            {
                "totalCount" => AggregationMethod.TotalCount,
                "distinctCount" => AggregationMethod.DistinctCount,
                "sum" => AggregationMethod.Sum,
                "avg" => AggregationMethod.Avg,
                "min" => AggregationMethod.Min,
                "max" => AggregationMethod.Max,
                "stddev" => AggregationMethod.Stddev,
                "sumsq" => AggregationMethod.Sumsq,
                _ => throw NgsiException.BadData($"aggrMethods: '{EntityParser.Truncate(word)}' is not one of totalCount, distinctCount, sum, avg, min, max, stddev, sumsq."),
            };
            if (!methods.Contains(method))
            {
                methods.Add(method);
            }
        }

        return methods;
    }

    private static DateTimeOffset? Time(IQueryCollection query, string name)
    {
        var text = QueryParameters.Text(query, name);
        if (text is null)
        {
            return null;
        }

        return NgsiText.TryParseDateTime(text, out var value)
            ? value
            : throw NgsiException.BadData($"{name} must be an ISO 8601 date-time with a time zone, e.g. 2026-11-25T08:00:00Z.");
    }
}

/// <summary>
/// An ISO 8601 duration P[n]Y[n]M[n]W[n]DT[n]H[n]M[n]S (aggrPeriodDuration). Years and months are calendar steps;
/// the rest is a fixed span. Zero (PT0S, P0D) means one period over the whole queried range.
/// </summary>
internal sealed partial record IsoDuration(int Years, int Months, TimeSpan Span)
{
    public static readonly IsoDuration Zero = new(0, 0, TimeSpan.Zero);

    public bool IsZero => Years == 0 && Months == 0 && Span == TimeSpan.Zero;

    public bool IsFixed => Years == 0 && Months == 0;

    public DateTimeOffset AddTo(DateTimeOffset start) => start.AddYears(Years).AddMonths(Months).Add(Span);

    public static IsoDuration Parse(string text)
    {
        var m = Pattern().Match(text);
        if (!m.Success || text is "P" or "PT" || text.EndsWith('T'))
        {
            throw NgsiException.BadData($"aggrPeriodDuration '{EntityParser.Truncate(text)}' is not an ISO 8601 duration such as PT1H, P1D or P1M.");
        }

        try
        {
            int Int(string group) => m.Groups[group].Success ? int.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture) : 0;
            double Dbl(string group) => m.Groups[group].Success ? double.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture) : 0;
            var span = TimeSpan.FromDays((Int("w") * 7) + Int("d")) + TimeSpan.FromHours(Int("h")) + TimeSpan.FromMinutes(Int("min"))
                + TimeSpan.FromSeconds(Dbl("s"));
            return new IsoDuration(Int("y"), Int("mon"), span);
        }
        catch (Exception ex) when (ex is OverflowException or ArgumentException)
        {
            throw NgsiException.BadData($"aggrPeriodDuration '{EntityParser.Truncate(text)}' is too long.");
        }
    }

    [GeneratedRegex(@"^P(?:(?<y>\d{1,4})Y)?(?:(?<mon>\d{1,5})M)?(?:(?<w>\d{1,5})W)?(?:(?<d>\d{1,6})D)?(?:T(?:(?<h>\d{1,7})H)?(?:(?<min>\d{1,9})M)?(?:(?<s>\d{1,10}(?:\.\d{1,7})?)S)?)?$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
