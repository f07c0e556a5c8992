using Machi.Ngsi.Model;

namespace Machi.Broker.Storage;

/// <summary>
/// A creation's history kept as one row instead of a row an instance: attr 0 (no term has that id), n the number of the
/// creation's first instance (change seq &lt;&lt; 16), instance the created entity in <see cref="EntityCodec"/>'s form (the
/// bytes the entity row stores), t the earliest instance's time, created_at and modified_at the latest instance's stamp.
/// It stands for exactly the rows <see cref="HistoryDiff.Rows"/> gives the creation — every instance in the entity's
/// order, numbered seq &lt;&lt; 16 | ordinal — and <see cref="Unfold"/> gives them back.
/// <para>
/// Why: a batch of new entities wrote ~8 history rows an entity, a quarter of SQLite's single writer (measured with one
/// row an entity: batch upserts ~22,900 → ~27,300 entities/s on SQLite, ~11,200 → ~14,600 on PostgreSQL; bench/README,
/// session 15). Readers unfold the row as they read an entity's history; anything that changes single recorded
/// instances (the temporal API's replace and delete, the retention rules) first unfolds it into ordinary rows, in its
/// own transaction.
/// </para>
/// </summary>
internal static class FoldedCreation
{
    /// <summary>The attr of a folded creation's row.</summary>
    public const long Attr = 0;

    /// <summary>
    /// t of the folded row, the earliest time (observedAt, else modifiedAt) of the creation's instances, and its
    /// created_at and modified_at, their latest stamp.
    /// </summary>
    public static (long Time, long Stamp) Bounds(NewEntityRows created)
    {
        var (time, stamp) = (long.MaxValue, long.MinValue);
        for (var i = 0; i < created.InstanceCount; i++)
        {
            time = Math.Min(time, created.ObservedAt(i) ?? created.InstanceModifiedAt(i));
            stamp = Math.Max(stamp, created.InstanceModifiedAt(i));
        }

        return (time, stamp);
    }

    /// <summary>The rows a folded creation stands for, with their instance numbers.</summary>
    /// <param name="n">The folded row's n (the creation's change seq &lt;&lt; 16).</param>
    /// <param name="doc">The folded row's instance: the created entity.</param>
    public static IEnumerable<(long N, HistoryDiff.Row Row)> Unfold(long n, byte[] doc)
    {
        var ordinal = 0L;

        // A creation records every instance and removes none, so the time of a removal is never used.
        foreach (var row in HistoryDiff.Rows(null, EntityCodec.Decode(doc), default))
        {
            yield return (n | ordinal++, row);
        }
    }
}
