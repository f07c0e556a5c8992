using System.Text.Json.Nodes;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;

namespace Machi.Broker.Registrations;

/// <summary>
/// A registration seen as an entity, so the one evaluator (EntityFilter) answers csf, geoQ and scopeQ on
/// registrations as it answers q, geoQ and scopeQ on entities: every member is a Property named by its expanded
/// term (the spec's members by the core @context, e.g. mode, endpoint; a registration's own properties as stored),
/// location / observationSpace / operationSpace are GeoProperties, contextSourceInfo is one Property whose value
/// maps each key to its value (csf=contextSourceInfo[city]=="aizu"), and scope is the entity's scope.
/// </summary>
internal static class RegistrationView
{
    public static Entity Of(CSourceRegistration registration)
    {
        var entity = new Entity(registration.Id, [LdContext.Core.ExpandTerm(RegistrationParser.TypeName)])
        {
            CreatedAt = registration.CreatedAt,
            ModifiedAt = registration.ModifiedAt,
        };
        foreach (var (name, value) in registration.Document)
        {
            if (value is null || name is "id" or "type" or "@context")
            {
                continue;
            }

            if (name == "scope")
            {
                entity.Scope = [.. value.AsArray().Select(s => s!.GetValue<string>())];
                continue;
            }

            var expanded = name.Contains(':', StringComparison.Ordinal) ? name : LdContext.Core.ExpandTerm(name);
            var (kind, payload) = name switch
            {
                "location" or "observationSpace" or "operationSpace" => (AttributeKind.GeoProperty, value.DeepClone()),
                "contextSourceInfo" => (AttributeKind.Property, KeyValues(value)),
                _ when value is JsonObject property && property["value"] is { } inner => (AttributeKind.Property, inner.DeepClone()),
                _ => (AttributeKind.Property, value.DeepClone()),
            };
            entity.Attributes[expanded] = [new AttributeInstance(kind, payload) { CreatedAt = registration.CreatedAt, ModifiedAt = registration.ModifiedAt }];
        }

        return entity;
    }

    private static JsonObject KeyValues(JsonNode list)
    {
        var map = new JsonObject();
        foreach (var item in list.AsArray())
        {
            if (item?["key"]?.GetValue<string>() is { } key)
            {
                map[key] = item["value"]?.DeepClone();
            }
        }

        return map;
    }
}
