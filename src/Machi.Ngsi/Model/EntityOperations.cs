namespace Machi.Ngsi.Model;

/// <summary>An attribute an update left alone, and why (UpdateResult, clause 5.2.18).</summary>
public sealed record NotUpdated(string AttributeName, string Reason);

/// <summary>The outcome of an attribute-level operation: which attributes changed and which did not.</summary>
public sealed class UpdateResult
{
    public List<string> Updated { get; } = [];

    public List<NotUpdated> NotUpdated { get; } = [];

    public bool IsComplete => NotUpdated.Count == 0;
}

/// <summary>
/// The entity-level and attribute-level operations of clause 5.6 as pure functions on the model: each takes the
/// current entity and the parsed request and changes the entity in place. Storage runs them inside its write
/// transaction; nothing here does I/O.
/// </summary>
public static class EntityOperations
{
    /// <summary>Append Entity Attributes (5.6.3): add, or overwrite unless noOverwrite.</summary>
    public static UpdateResult Append(Entity entity, AttributeMap attributes, bool noOverwrite, DateTimeOffset now) =>
        Put(entity, attributes, now, existing => existing is null || !noOverwrite, "Attribute exists and options=noOverwrite was given.");

    /// <summary>Update Entity Attributes (5.6.2): only attributes (and datasetIds) that already exist change.</summary>
    public static UpdateResult Update(Entity entity, AttributeMap attributes, DateTimeOffset now) =>
        Put(entity, attributes, now, existing => existing is not null, "Attribute (with this datasetId) does not exist.");

    /// <summary>Puts every instance the rule accepts (given the instance it would replace); an attribute none of
    /// whose instances was accepted is reported with <paramref name="refusal"/>.</summary>
    private static UpdateResult Put(Entity entity, AttributeMap attributes, DateTimeOffset now, Func<AttributeInstance?, bool> accepts, string refusal)
    {
        var result = new UpdateResult();
        foreach (var (name, instances) in attributes)
        {
            var changed = false;
            foreach (var instance in instances)
            {
                var existing = entity.Attributes.Find(name, instance.DatasetId);
                if (!accepts(existing))
                {
                    continue;
                }

                Stamp(instance, existing, now);
                entity.Attributes.Put(name, instance);
                changed = true;
            }

            if (changed)
            {
                result.Updated.Add(name);
            }
            else
            {
                result.NotUpdated.Add(new(name, refusal));
            }
        }

        if (result.Updated.Count > 0)
        {
            entity.ModifiedAt = now;
        }

        return result;
    }

    /// <summary>Partial Attribute update (5.6.4): the given members replace the old ones, sub-attributes merge.</summary>
    /// <returns>False when the attribute instance does not exist.</returns>
    public static bool PatchAttribute(Entity entity, string name, AttributeFragment fragment, DateTimeOffset now)
    {
        var existing = entity.Attributes.Find(name, fragment.Instance.DatasetId);
        if (existing is null)
        {
            return false;
        }

        MergeInto(existing, fragment.Instance, fragment.HasKind, fragment.HasPayload, now);
        entity.ModifiedAt = now;
        return true;
    }

    /// <summary>Replace Attribute (5.6.19): the instance with the same datasetId is replaced as a whole.</summary>
    /// <returns>False when the attribute instance does not exist.</returns>
    public static bool ReplaceAttribute(Entity entity, string name, AttributeInstance replacement, DateTimeOffset now)
    {
        var existing = entity.Attributes.Find(name, replacement.DatasetId);
        if (existing is null)
        {
            return false;
        }

        Stamp(replacement, existing, now);
        entity.Attributes.Put(name, replacement);
        entity.ModifiedAt = now;
        return true;
    }

    /// <summary>Delete Attribute (5.6.5): one instance by datasetId, or all with deleteAll.</summary>
    public static bool DeleteAttribute(Entity entity, string name, string? datasetId, bool deleteAll, DateTimeOffset now)
    {
        if (!entity.Attributes.RemoveInstance(name, datasetId, deleteAll))
        {
            return false;
        }

        entity.ModifiedAt = now;
        return true;
    }

    /// <summary>Replace Entity (5.6.18): everything but id and createdAt comes from the replacement.</summary>
    public static Entity Replace(Entity current, Entity replacement, DateTimeOffset now)
    {
        replacement.CreatedAt = current.CreatedAt;
        replacement.ModifiedAt = now;
        return replacement;
    }

    /// <summary>
    /// Merge Entity (5.6.17, JSON merge-patch semantics): attributes are added or merged with the existing
    /// instance (value replaced, sub-attributes merged), "urn:ngsi-ld:null" deletes an attribute or sub-attribute,
    /// given types are added, a given scope replaces the old one.
    /// </summary>
    public static void Merge(Entity entity, List<string>? types, List<string>? scope, AttributeMap attributes, DateTimeOffset now)
    {
        if (types is not null)
        {
            foreach (var t in types)
            {
                if (!entity.Types.Contains(t))
                {
                    entity.Types.Add(t);
                }
            }
        }

        if (scope is not null)
        {
            entity.Scope = scope;
        }

        foreach (var (name, instances) in attributes)
        {
            foreach (var patch in instances)
            {
                if (patch.IsNullMarker)
                {
                    entity.Attributes.RemoveInstance(name, patch.DatasetId, all: false);
                    continue;
                }

                var existing = entity.Attributes.Find(name, patch.DatasetId);
                if (existing is null)
                {
                    RemoveNullMarkers(patch.Sub);
                    Stamp(patch, null, now);
                    entity.Attributes.Put(name, patch);
                }
                else
                {
                    MergeInto(existing, patch, hasKind: true, hasPayload: true, now);
                }
            }
        }

        entity.ModifiedAt = now;
    }

    /// <summary>
    /// Merges a patch into an existing instance (partial update, merge-patch): payload and type when given, the
    /// other members given replace theirs, sub-attributes merge and "urn:ngsi-ld:null" removes one.
    /// </summary>
    private static void MergeInto(AttributeInstance existing, AttributeInstance patch, bool hasKind, bool hasPayload, DateTimeOffset now)
    {
        if (hasKind)
        {
            existing.Kind = patch.Kind;
        }

        if (hasPayload)
        {
            existing.TakePayload(patch);
        }

        existing.ObservedAt = patch.ObservedAt ?? existing.ObservedAt;
        existing.UnitCode = patch.UnitCode ?? existing.UnitCode;
        existing.ObjectType = patch.ObjectType ?? existing.ObjectType;
        existing.ValueType = patch.ValueType ?? existing.ValueType;
        if (patch.Sub is { } sub)
        {
            existing.Sub ??= new AttributeMap();
            foreach (var (subName, subInstances) in sub)
            {
                foreach (var s in subInstances)
                {
                    if (s.IsNullMarker)
                    {
                        existing.Sub.RemoveInstance(subName, s.DatasetId, all: false);
                    }
                    else
                    {
                        Stamp(s, existing.Sub.Find(subName, s.DatasetId), now);
                        existing.Sub.Put(subName, s);
                    }
                }
            }
        }

        existing.ModifiedAt = now;
    }

    private static void RemoveNullMarkers(AttributeMap? map)
    {
        if (map is null)
        {
            return;
        }

        foreach (var name in map.Keys.ToList())
        {
            map[name].RemoveAll(i => i.IsNullMarker);
            if (map[name].Count == 0)
            {
                map.Remove(name);
            }
        }
    }

    /// <summary>A replacing instance keeps the createdAt of the one it replaces.</summary>
    private static void Stamp(AttributeInstance instance, AttributeInstance? replaced, DateTimeOffset now)
    {
        instance.CreatedAt = replaced?.CreatedAt ?? now;
        instance.ModifiedAt = now;
    }
}
