namespace Machi.Ngsi.Model;

/// <summary>An NGSI-LD entity with its types and attribute names expanded to IRIs.</summary>
public sealed class Entity
{
    public Entity(string id, List<string> types)
    {
        Id = id;
        Types = types;
    }

    public string Id { get; }

    /// <summary>Expanded type IRIs (an entity may have several, clause 4.16).</summary>
    public List<string> Types { get; set; }

    /// <summary>Scopes (clause 4.18), e.g. "/Aizu/Kita"; null when the entity has none.</summary>
    public List<string>? Scope { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ModifiedAt { get; set; }

    public AttributeMap Attributes { get; set; } = new();

    public Entity Clone() => new(Id, [.. Types])
    {
        Scope = Scope is null ? null : [.. Scope],
        CreatedAt = CreatedAt,
        ModifiedAt = ModifiedAt,
        Attributes = Attributes.Clone(),
    };
}
