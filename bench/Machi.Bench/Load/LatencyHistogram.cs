using System.Numerics;

namespace Machi.Bench.Load;

/// <summary>
/// Log-linear latency histogram in the manner of HdrHistogram. Values (nanoseconds) below 256 are kept exactly;
/// larger ones fall into 128 linear sub-buckets per power of two, so every reported value is within 1/128 (0.8 %)
/// of what was recorded. Recording is an index computation and an increment: no allocation, no lock. Not
/// thread-safe: each worker owns one and the owners are merged afterwards.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBucketCount = 1 << SubBucketBits;

    // Exponents up to 40 cover values below 2^41 ns (about 36 minutes); anything longer is counted in the last
    // bucket (Max stays exact).
    private const int MaxExponent = 40;
    internal const int BucketCount = (MaxExponent - SubBucketBits + 2) * SubBucketCount;

    private readonly long[] _counts = new long[BucketCount];
    private long _sum;

    public long Count { get; private set; }

    public long Min { get; private set; } = long.MaxValue;

    public long Max { get; private set; }

    public double Mean => Count == 0 ? 0 : (double)_sum / Count;

    public void Record(long nanoseconds)
    {
        if (nanoseconds < 0)
        {
            nanoseconds = 0;
        }

        _counts[IndexOf(nanoseconds)]++;
        Count++;
        _sum += nanoseconds;
        if (nanoseconds < Min)
        {
            Min = nanoseconds;
        }

        if (nanoseconds > Max)
        {
            Max = nanoseconds;
        }
    }

    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (int i = 0; i < BucketCount; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        _sum += other._sum;
        Min = Math.Min(Min, other.Min);
        Max = Math.Max(Max, other.Max);
    }

    /// <summary>The smallest recorded value such that <paramref name="percentile"/> % of values are at or below
    /// it (reported as the top of its bucket, never above the exact maximum).</summary>
    public long ValueAtPercentile(double percentile)
    {
        if (Count == 0)
        {
            return 0;
        }

        if (percentile >= 100)
        {
            return Max;
        }

        long rank = Math.Max(1, (long)Math.Ceiling(percentile / 100 * Count));
        long seen = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(HighestEquivalentValue(i), Max);
            }
        }

        return Max;
    }

    internal static int IndexOf(long value)
    {
        if (value < SubBucketCount)
        {
            return (int)value;
        }

        int top = 63 - BitOperations.LeadingZeroCount((ulong)value);
        if (top > MaxExponent)
        {
            return BucketCount - 1;
        }

        int shift = top - SubBucketBits;
        int subBucket = (int)(value >> shift); // in [128, 256)
        return ((shift + 1) << SubBucketBits) + subBucket - SubBucketCount;
    }

    internal static long HighestEquivalentValue(int index)
    {
        if (index < SubBucketCount)
        {
            return index;
        }

        int shift = (index >> SubBucketBits) - 1;
        long subBucket = (index & (SubBucketCount - 1)) + SubBucketCount;
        return ((subBucket + 1) << shift) - 1;
    }
}

/// <summary>A histogram's figures in milliseconds (one decimal), as the scenarios with their own reports write them.</summary>
internal sealed record LatencySummary(double P50, double P90, double P99, double Max, double Mean, long Count)
{
    public static LatencySummary Of(LatencyHistogram h) => new(
        Ms(h.ValueAtPercentile(50)), Ms(h.ValueAtPercentile(90)), Ms(h.ValueAtPercentile(99)), Ms(h.Count == 0 ? 0 : h.Max), Math.Round(h.Mean / 1e6, 2), h.Count);

    private static double Ms(long nanoseconds) => Math.Round(nanoseconds / 1e6, 1);
}
