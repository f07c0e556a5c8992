using System.Buffers;
using System.Text;
using System.Text.Json;
using CsCheck;
using Machi.Broker.Temporal;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Broker.Tests.Temporal;

/// <summary>The pure parts of the temporal API: ISO 8601 durations and aggregation periods.</summary>
public sealed class AggregationTests
{
    private static readonly DateTimeOffset Jan31 = new(2026, 1, 31, 0, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("PT1H", 0, 0, 3600)]
    [InlineData("P1D", 0, 0, 86400)]
    [InlineData("P2W", 0, 0, 14 * 86400)]
    [InlineData("PT0.5S", 0, 0, 0.5)]
    [InlineData("P1Y2M3DT4H5M6S", 1, 2, (3 * 86400) + (4 * 3600) + (5 * 60) + 6)]
    [InlineData("PT0S", 0, 0, 0)]
    [InlineData("P0D", 0, 0, 0)]
    public void Durations_parse_into_calendar_steps_and_a_fixed_span(string text, int years, int months, double seconds)
    {
        var duration = IsoDuration.Parse(text);
        Assert.Equal(years, duration.Years);
        Assert.Equal(months, duration.Months);
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration.Span);
        Assert.Equal(years == 0 && months == 0 && seconds == 0, duration.IsZero);
    }

    [Theory]
    [InlineData("1H")]
    [InlineData("P")]
    [InlineData("PT")]
    [InlineData("P1DT")]
    [InlineData("PT-1H")]
    [InlineData("P1H")]
    [InlineData("2026-01-01T00:00:00Z/P1D")]
    [InlineData("P99999999999D")]
    public void Malformed_durations_are_BadRequestData(string text)
    {
        var error = Assert.Throws<NgsiException>(() => IsoDuration.Parse(text));
        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
    }

    [Fact]
    public void Monthly_periods_follow_the_calendar()
    {
        var rows = new[] { Jan31.AddDays(1).AddHours(1), Jan31.AddDays(27), Jan31.AddDays(28), Jan31.AddDays(60) }
            .Select((t, i) => Row(t, i + 1)).ToList();
        var query = new TemporalQuery { Relation = TimeRelation.After, TimeAt = new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero), Period = IsoDuration.Parse("P1M") };

        // 1 Feb 01:00, 27 Feb and 28 Feb are in February (which ends at 1 March); 1 April starts the April period.
        var periods = Periods(rows.Where(r => query.Contains(r.Time(query.Property))).ToList(), query);
        Assert.Equal(["2026-02-01", "2026-04-01"], periods.Select(p => p.Start.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero), periods[0].End);
        Assert.Equal(3, periods[0].Count);
        Assert.Equal(1, periods[0].Min);
    }

    [Fact]
    public void Periods_hold_every_instance_once_and_each_one_in_the_period_containing_its_time()
    {
        var gen = Gen.Select(Gen.Int[0, 100_000].Array[1, 40], Gen.Int[1, 20_000], Gen.Bool);
        gen.Sample((offsets, periodSeconds, calendar) =>
        {
            var origin = new DateTimeOffset(2026, 11, 25, 0, 0, 0, TimeSpan.Zero);
            var rows = offsets.Select((o, i) => Row(origin.AddSeconds(o), i)).ToList();
            var query = new TemporalQuery
            {
                Relation = TimeRelation.Between,
                TimeAt = origin,
                EndTimeAt = origin.AddDays(30),
                Period = calendar ? IsoDuration.Parse("P1M") : IsoDuration.Parse($"PT{periodSeconds}S"),
            };
            var periods = Periods(rows, query);
            Assert.Equal(rows.Count, periods.Sum(p => p.Count));
            foreach (var period in periods)
            {
                // Each period holds exactly the instances whose time it contains (their values are distinct ordinals).
                var inside = rows.Where(r => r.ObservedAt >= period.Start && r.ObservedAt < period.End).Select(r => double.Parse(r.Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
                Assert.Equal(inside.Count, period.Count);
                Assert.Equal(inside.Sum(), period.Sum);
            }

            Assert.True(periods.Zip(periods.Skip(1)).All(p => p.First.End <= p.Second.Start), "periods are ordered and disjoint");
        });
    }

    [Theory]
    [InlineData("TotalCount", "5")]
    [InlineData("DistinctCount", "4")]
    [InlineData("Sum", "6")]
    [InlineData("Min", "1")]
    [InlineData("Max", "3")]
    [InlineData("Sumsq", "14")]
    public void Numeric_methods_use_numbers_only_and_counts_use_every_value(string method, string expected)
    {
        // 1, 2, 3 are numbers; "a" twice is text (counted, never summed).
        Assert.Equal(expected, Write(w => Aggregation.Write(w, Enum.Parse<AggregationMethod>(method), Period(["1", "2", "3", "\"a\"", "\"a\""]))));
        Assert.Equal("null", Write(w => Aggregation.Write(w, AggregationMethod.Avg, Period(["\"a\"", "true"]))));
    }

    [Fact]
    public void The_standard_deviation_is_the_sample_one_and_exact_for_large_values_with_a_small_spread()
    {
        Assert.Equal("0", Write(w => Aggregation.Write(w, AggregationMethod.Stddev, Period(["5"]))));
        Assert.Equal(1.0, double.Parse(Write(w => Aggregation.Write(w, AggregationMethod.Stddev, Period(["1e9", "1000000001", "1000000002"]))), System.Globalization.CultureInfo.InvariantCulture), 9);
    }

    /// <summary>The periods of one series fed to the builder oldest first, as the history is read.</summary>
    private static List<AggregationPeriod> Periods(List<HistoryRow> rows, TemporalQuery query)
    {
        var builder = new AggregationBuilder(query with { Methods = [AggregationMethod.TotalCount] });
        foreach (var row in rows.OrderBy(r => r.Time(query.Property)))
        {
            builder.Add(row.Attr, row.DatasetId, row.Kind, row.Time(query.Property), Encoding.UTF8.GetBytes(row.Value), row.Deleted);
        }

        return builder.Finish().SingleOrDefault()?.Periods ?? [];
    }

    private static AggregationPeriod Period(string[] values)
    {
        var period = new AggregationPeriod(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddDays(1), distinct: true);
        foreach (var value in values)
        {
            period.Add(Encoding.UTF8.GetBytes(value));
        }

        return period;
    }

    private static HistoryRow Row(DateTimeOffset at, int value) =>
        new("https://example.org/speed", null, $"urn:i:{value}", AttributeKind.Property, at, at, at, value.ToString(System.Globalization.CultureInfo.InvariantCulture), null, false);

    private static string Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
