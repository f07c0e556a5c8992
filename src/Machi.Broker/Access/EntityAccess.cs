using System.Text.Json.Nodes;
using Machi.Ngsi.Model;

namespace Machi.Broker.Access;

/// <summary>Who may see an entity: anyone (public), holders of a read scope (internal), or per person (personal).</summary>
public enum AccessLevel
{
    /// <summary>City data for services and staff with <c>ngsi:read</c>; the default.</summary>
    Internal = 0,

    /// <summary>Open data: anyone, without a token.</summary>
    Public = 1,

    /// <summary>A resident's data: the owner, services holding the owner's consent, staff under a declared emergency.</summary>
    Personal = 2,
}

/// <summary>
/// The access marks an entity carries as attributes of Machi's vocabulary: <c>https://machi.city/ns/owner</c> (the
/// resident's subject id) with <c>…/dataCategory</c> (location, vitals, power, water, payments …) makes it personal;
/// <c>…/visibility</c> = "public" makes it open data. Stored with the entity, so the store indexes them and a query's
/// SQL filters on them.
/// </summary>
public readonly record struct EntityAccess(AccessLevel Level, string? Owner, string? Category)
{
    public const string Vocabulary = "https://machi.city/ns/";
    public const string OwnerAttribute = Vocabulary + "owner";
    public const string CategoryAttribute = Vocabulary + "dataCategory";
    public const string VisibilityAttribute = Vocabulary + "visibility";

    /// <summary>The category of a personal entity that names none.</summary>
    public const string DefaultCategory = "other";

    public static EntityAccess Of(Entity? entity)
    {
        if (entity is null)
        {
            return default;
        }

        var owner = Text(entity, OwnerAttribute);
        if (owner is not null)
        {
            return new EntityAccess(AccessLevel.Personal, owner, Text(entity, CategoryAttribute) ?? DefaultCategory);
        }

        return string.Equals(Text(entity, VisibilityAttribute), "public", StringComparison.Ordinal)
            ? new EntityAccess(AccessLevel.Public, null, null)
            : default;
    }

    /// <summary>
    /// The marks an entity's history takes after a write (null: it keeps its own): those of the entity written when it
    /// is created or its marks change; a deleted entity's history stays as private as it was. Every backend's writer
    /// asks this, so the history's marks are decided in one place.
    /// </summary>
    public static EntityAccess? ForHistory(EntityAccess before, bool existed, Entity? after)
    {
        if (after is null)
        {
            return null;
        }

        var marks = Of(after);
        return !existed || marks != before ? marks : null;
    }

    private static string? Text(Entity entity, string attribute) =>
        entity.Attributes.TryGetValue(attribute, out var instances) && instances.Count > 0
            && instances[0].Payload is JsonValue value && value.TryGetValue<string>(out var text) && text.Length > 0
            ? text
            : null;
}
