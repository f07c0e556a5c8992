using System.Text.Json.Nodes;

namespace Machi.Ngsi.Model;

/// <summary>
/// Linked Entity retrieval with join=inline (clause 4.5.23): where a Relationship of a returned entity names an entity
/// at hand, that Linked Entity is written into the Relationship ("entity", or "entityList" for a ListRelationship), and
/// its own Relationships in turn, down to joinLevel. An entity met before on the way from the root is still written
/// but not expanded again, so a cycle ends.
/// </summary>
public sealed class InlineJoin
{
    private static readonly HashSet<string> NoneSeen = [];

    private readonly IReadOnlyDictionary<string, Entity> _entities;
    private readonly int _levels;
    private readonly int _remaining;
    private readonly HashSet<string> _seen;

    /// <summary>A join over <paramref name="entities"/> (by id) that expands Relationships <paramref name="levels"/> deep.</summary>
    public InlineJoin(IReadOnlyDictionary<string, Entity> entities, int levels)
        : this(entities, levels, levels, NoneSeen)
    {
    }

    private InlineJoin(IReadOnlyDictionary<string, Entity> entities, int levels, int remaining, HashSet<string> seen)
    {
        _entities = entities;
        _levels = levels;
        _remaining = remaining;
        _seen = seen;
    }

    /// <summary>The join as it starts from one returned entity.</summary>
    public InlineJoin Root(string id) => new(_entities, _levels, _levels, new HashSet<string>(StringComparer.Ordinal) { id });

    /// <summary>The Linked Entities of a Relationship or ListRelationship to write into it, each with the join that
    /// goes on below it; null when there is none (not a relationship, no level left, or no entity at hand).</summary>
    public IReadOnlyList<(Entity Entity, InlineJoin Next)>? Linked(AttributeInstance attribute)
    {
        if (_remaining <= 0 || attribute.Kind is not (AttributeKind.Relationship or AttributeKind.ListRelationship))
        {
            return null;
        }

        List<(Entity, InlineJoin)>? linked = null;
        foreach (var id in Targets(attribute))
        {
            if (_entities.TryGetValue(id, out var entity))
            {
                var next = new InlineJoin(_entities, _levels, _seen.Add(id) ? _remaining - 1 : 0, _seen);
                (linked ??= []).Add((entity, next));
            }
        }

        return linked;
    }

    /// <summary>The entity ids a Relationship (object: one URI or several) or ListRelationship (objectList) names.</summary>
    public static IEnumerable<string> Targets(AttributeInstance attribute)
    {
        ArgumentNullException.ThrowIfNull(attribute);
        if (attribute.Kind is not (AttributeKind.Relationship or AttributeKind.ListRelationship))
        {
            yield break;
        }

        switch (attribute.Payload)
        {
            case JsonValue one when one.TryGetValue<string>(out var id):
                yield return id;
                break;
            case JsonArray many:
                foreach (var item in many)
                {
                    var id = item switch
                    {
                        JsonValue v when v.TryGetValue<string>(out var s) => s,
                        JsonObject o when o["object"] is JsonValue v && v.TryGetValue<string>(out var s) => s,
                        _ => null,
                    };
                    if (id is not null)
                    {
                        yield return id;
                    }
                }

                break;
        }
    }
}
