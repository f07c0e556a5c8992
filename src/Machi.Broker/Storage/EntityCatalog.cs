using Machi.Ngsi.Model;

namespace Machi.Broker.Storage;

/// <summary>What a discovery request (clauses 5.7.5–5.7.10) wants described; names are expanded IRIs.</summary>
public sealed record CatalogQuery
{
    /// <summary>Only entities of this type.</summary>
    public string? Type { get; init; }

    /// <summary>Only this attribute (and the types of the entities that have it).</summary>
    public string? Attribute { get; init; }

    /// <summary>Also report the attribute types (Property, Relationship …) in use. The indexes do not hold them,
    /// so a backend may have to read the entities concerned.</summary>
    public bool AttributeKinds { get; init; }
}

/// <summary>The entity types and attributes of one tenant (within a <see cref="CatalogQuery"/>), sorted by IRI.</summary>
public sealed record EntityCatalog(IReadOnlyList<TypeSummary> Types, IReadOnlyList<AttributeSummary> Attributes)
{
    public static EntityCatalog Empty { get; } = new([], []);
}

/// <summary>An entity type: how many entities have it and the attribute names they use.</summary>
public sealed record TypeSummary(string Type, long EntityCount, IReadOnlyList<string> AttributeNames);

/// <summary>An attribute name: how many entities have it, their types, and (when asked for) its attribute types.</summary>
public sealed record AttributeSummary(string Name, long EntityCount, IReadOnlyList<string> TypeNames, IReadOnlyList<AttributeKind>? Kinds);
