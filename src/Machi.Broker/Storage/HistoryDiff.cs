using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Broker.Storage;

/// <summary>
/// What one write adds to the temporal history, the same for every backend: a row for each instance the write created
/// or changed (its modifiedAt or observedAt moved), and a deletion row (the NGSI-LD Null of its kind) for each instance
/// it removed. Rows are numbered (change seq &lt;&lt; 16) | ordinal, so a write records at most
/// <see cref="MaxInstancesPerWrite"/> − 1 of them.
/// </summary>
internal static class HistoryDiff
{
    /// <summary>Instances a single write may record (the ordinal is the low 16 bits of the instance number).</summary>
    public const int MaxInstancesPerWrite = 1 << 16;

    /// <summary>What an entity's instances were before a write: enough to tell which instances the write touched.</summary>
    public readonly record struct InstanceStamp(string Name, string? DatasetId, DateTimeOffset ModifiedAt, string? ObservedAt, AttributeKind Kind);

    /// <summary>One history row of a write. <see cref="Instance"/> is null for a deletion.</summary>
    public readonly record struct Row(string Attr, string? DatasetId, AttributeKind Kind, long Time, long? ObservedAt, long At, string Value, AttributeInstance? Instance)
    {
        public bool Deleted => Instance is null;
    }

    /// <summary>The stamps of an entity's instances (taken before the write mutates it); null for no entity.</summary>
    public static List<InstanceStamp>? Stamps(Entity? entity)
    {
        if (entity is null)
        {
            return null;
        }

        var stamps = new List<InstanceStamp>();
        foreach (var (name, instances) in entity.Attributes)
        {
            foreach (var instance in instances)
            {
                stamps.Add(new InstanceStamp(name, instance.DatasetId, instance.ModifiedAt, instance.ObservedAt, instance.Kind));
            }
        }

        return stamps;
    }

    /// <summary>Refuses, before anything is written, an entity whose instances could not all be numbered.</summary>
    public static void CheckLimit(Entity entity)
    {
        var count = 0;
        foreach (var (_, instances) in entity.Attributes)
        {
            count += instances.Count;
        }

        CheckLimit(count);
    }

    /// <summary>Refuses, before anything is written, an entity of <paramref name="count"/> instances when they could not all be numbered.</summary>
    public static void CheckLimit(int count)
    {
        if (count >= MaxInstancesPerWrite)
        {
            throw NgsiException.BadData($"An entity may have at most {MaxInstancesPerWrite - 1} attribute instances.");
        }
    }

    /// <summary>The rows of one write, in ordinal order: changed instances of <paramref name="after"/>, then removals.</summary>
    public static IEnumerable<Row> Rows(List<InstanceStamp>? before, Entity? after, DateTimeOffset at)
    {
        if (after is not null)
        {
            foreach (var (name, instances) in after.Attributes)
            {
                foreach (var instance in instances)
                {
                    if (before is not null && Unchanged(before, name, instance))
                    {
                        continue;
                    }

                    var observed = NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o.UtcTicks : (long?)null;
                    var stamp = instance.ModifiedAt.UtcTicks;
                    yield return new Row(name, instance.DatasetId, instance.Kind, observed ?? stamp, observed, stamp,
                        System.Text.Encoding.UTF8.GetString(instance.PayloadUtf8), instance);
                }
            }
        }

        foreach (var gone in before ?? [])
        {
            if (after?.Attributes.Find(gone.Name, gone.DatasetId) is not null)
            {
                continue;
            }

            var nullValue = gone.Kind == AttributeKind.LanguageProperty ? $"{{\"@none\":\"{NgsiText.NullUri}\"}}" : $"\"{NgsiText.NullUri}\"";
            yield return new Row(gone.Name, gone.DatasetId, gone.Kind, at.UtcTicks, null, at.UtcTicks, nullValue, null);
        }
    }

    private static bool Unchanged(List<InstanceStamp> before, string name, AttributeInstance instance)
    {
        foreach (var stamp in before)
        {
            if (stamp.Name == name && stamp.DatasetId == instance.DatasetId)
            {
                return stamp.ModifiedAt == instance.ModifiedAt && stamp.ObservedAt == instance.ObservedAt;
            }
        }

        return false;
    }
}
