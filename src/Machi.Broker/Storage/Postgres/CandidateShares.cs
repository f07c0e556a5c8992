using System.Collections.Concurrent;

namespace Machi.Broker.Storage.Postgres;

/// <summary>
/// The share of a candidate statement's rows that ended on the page, learnt per statement (one per query shape: driving
/// condition and probes), so that a query's first chunk is sized for a page. A type + q query keeps about one candidate
/// in five: sized for all of them matching, its first chunk fell short and nearly every page took a second statement,
/// whose round trip, planning and executor start cost the broker and PostgreSQL as much as the first.
/// </summary>
internal sealed class CandidateShares
{
    // Query shapes come from clients: past this many, the learnt shares start again rather than grow without bound.
    private const int MaxShapes = 4_096;

    // Chunks smaller than this say too little about the share to move it.
    private const int MinSample = 16;

    private readonly ConcurrentDictionary<string, double> _shares = new(StringComparer.Ordinal);

    /// <summary>The share learnt for <paramref name="sql"/>; 1 (every candidate matches) until one is.</summary>
    public double Of(string sql) => _shares.TryGetValue(sql, out var share) ? share : 1.0;

    /// <summary>Learns from a statement whose <paramref name="read"/> candidates gave <paramref name="matched"/> entities.</summary>
    public void Learn(string sql, long read, long matched)
    {
        if (read < MinSample)
        {
            return;
        }

        // At least one in 1,024: a shape that matched nothing gets the largest chunks, not infinite ones.
        var observed = Math.Max((double)matched / read, 1.0 / 1024);
        if (_shares.Count >= MaxShapes && !_shares.ContainsKey(sql))
        {
            _shares.Clear();
        }

        // A moving average: one query's share (one type in one district) is not the next one's.
        _shares.AddOrUpdate(sql, observed, (_, share) => (0.75 * share) + (0.25 * observed));
    }

    /// <summary>
    /// The chunk of candidates that should give <paramref name="wanted"/> more entities when <paramref name="share"/>
    /// of them match, a quarter over, within [<paramref name="min"/>, <paramref name="max"/>].
    /// </summary>
    public static int Chunk(long wanted, double share, int min, int max) =>
        (int)Math.Clamp((wanted * 1.25 / share) + 4, min, max);
}
