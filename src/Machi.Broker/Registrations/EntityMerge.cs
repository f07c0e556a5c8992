using Machi.Ngsi.Model;

namespace Machi.Broker.Registrations;

/// <summary>
/// Merges the same entity as held by several sources into one (clauses 4.3.6.7 and 4.5.5): types and scopes are
/// united; attribute instances with different datasetIds are kept apart; for the same attribute and datasetId the
/// instance observed most recently wins, else the one modified most recently, else the one already held.
/// </summary>
internal static class EntityMerge
{
    /// <param name="fillOnly">Auxiliary data: only attributes the target lacks are taken.</param>
    public static void Into(Entity target, Entity incoming, bool fillOnly)
    {
        foreach (var type in incoming.Types)
        {
            if (!target.Types.Contains(type))
            {
                target.Types.Add(type);
            }
        }

        if (incoming.Scope is { } scopes)
        {
            target.Scope ??= [];
            foreach (var scope in scopes.Where(s => !target.Scope.Contains(s)))
            {
                target.Scope.Add(scope);
            }
        }

        foreach (var (name, instances) in incoming.Attributes)
        {
            if (!target.Attributes.TryGetValue(name, out _))
            {
                target.Attributes[name] = [.. instances];
                continue;
            }

            if (fillOnly)
            {
                continue;
            }

            foreach (var instance in instances)
            {
                var held = target.Attributes.Find(name, instance.DatasetId);
                if (held is null || IsNewer(instance, held))
                {
                    target.Attributes.Put(name, instance);
                }
            }
        }

        if (incoming.CreatedAt < target.CreatedAt)
        {
            target.CreatedAt = incoming.CreatedAt;
        }

        if (incoming.ModifiedAt > target.ModifiedAt)
        {
            target.ModifiedAt = incoming.ModifiedAt;
        }
    }

    /// <summary>Removes the given attributes (an exclusive registration holds them elsewhere).</summary>
    public static void Without(Entity entity, IEnumerable<string> names)
    {
        foreach (var name in names)
        {
            entity.Attributes.Remove(name);
        }
    }

    private static bool IsNewer(AttributeInstance candidate, AttributeInstance held)
    {
        if (candidate.ObservedAt is { } a && held.ObservedAt is { } b)
        {
            return RegistrationParser.Instant(a) > RegistrationParser.Instant(b);
        }

        return candidate.ModifiedAt > held.ModifiedAt;
    }
}
