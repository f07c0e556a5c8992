using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Model;

/// <summary>
/// Turns request bodies in normalized or concise representation (clauses 4.5, 5.2) into the model, expanding
/// names with the request's @context and validating every member. Never throws anything but
/// <see cref="NgsiException"/>.
/// </summary>
public static class EntityParser
{
    private const int MaxDepth = 16;

    /// <summary>Members of an attribute object that are not sub-attributes.</summary>
    private static readonly HashSet<string> AttributeKeywords = new(StringComparer.Ordinal)
    {
        "type", "@type", "value", "@value", "object", "objectType", "languageMap", "vocab", "json", "valueList",
        "objectList", "valueType", "datasetId", "observedAt", "unitCode", "createdAt", "modifiedAt", "deletedAt",
        "instanceId", "previousValue", "previousObject", "previousLanguageMap", "previousVocab", "previousJson",
        "previousValueList", "previousObjectList", "lang", "entity", "entityList",
    };

    /// <summary>Top-level members of an entity that are not attributes.</summary>
    private static readonly HashSet<string> EntityKeywords = new(StringComparer.Ordinal)
    {
        "id", "@id", "type", "@type", "@context", "scope", "createdAt", "modifiedAt", "deletedAt",
    };

    /// <summary>Parses a whole entity (create, replace, batch items).</summary>
    /// <param name="idFromPath">The id given by the URL (replace); a body id must then agree.</param>
    public static Entity ParseEntity(JsonNode? body, LdContext context, DateTimeOffset now, string? idFromPath = null)
    {
        if (body is not JsonObject obj)
        {
            throw NgsiException.BadData("An entity must be a JSON object.");
        }

        var id = ReadId(obj, idFromPath);
        var types = ReadTypes(obj, context, required: true)!;
        var entity = new Entity(id, types)
        {
            CreatedAt = now,
            ModifiedAt = now,
            Scope = ReadScope(obj),
            Attributes = ParseAttributes(obj, context, now, allowNullMarker: false),
        };
        return entity;
    }

    /// <summary>Reads the entity id (id or @id), required unless given by the URL.</summary>
    public static string ReadId(JsonObject obj, string? idFromPath)
    {
        var idNode = obj["id"] ?? obj["@id"];
        if (idNode is null)
        {
            if (idFromPath is not null)
            {
                return idFromPath;
            }

            throw NgsiException.BadData("The entity has no 'id'.");
        }

        if (idNode.GetValueKind() != JsonValueKind.String)
        {
            throw NgsiException.BadData("The entity 'id' must be a string holding a URI.");
        }

        var id = idNode.GetValue<string>();
        if (!NgsiText.IsUri(id))
        {
            throw NgsiException.BadData($"The entity id '{Truncate(id)}' is not a URI.");
        }

        if (idFromPath is not null && id != idFromPath)
        {
            throw NgsiException.BadData($"The body's id '{Truncate(id)}' differs from the id in the URL.");
        }

        return id;
    }

    /// <summary>Reads and expands type/@type: a name or a non-empty array of names.</summary>
    public static List<string>? ReadTypes(JsonObject obj, LdContext context, bool required)
    {
        var node = obj["type"] ?? obj["@type"];
        if (node is null)
        {
            return required ? throw NgsiException.BadData("The entity has no 'type'.") : null;
        }

        var types = new List<string>(1);
        switch (node)
        {
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                types.Add(ExpandType(v.GetValue<string>(), context));
                break;
            case JsonArray array when array.Count > 0:
                foreach (var item in array)
                {
                    if (item is not JsonValue iv || iv.GetValueKind() != JsonValueKind.String)
                    {
                        throw NgsiException.BadData("Every entity type must be a string.");
                    }

                    var t = ExpandType(iv.GetValue<string>(), context);
                    if (!types.Contains(t))
                    {
                        types.Add(t);
                    }
                }

                break;
            default:
                throw NgsiException.BadData("The entity 'type' must be a string or a non-empty array of strings.");
        }

        return types;
    }

    private static string ExpandType(string type, LdContext context)
    {
        if (!NgsiText.IsName(type))
        {
            throw NgsiException.BadData($"'{Truncate(type)}' is not a valid entity type name.");
        }

        return context.ExpandTerm(type);
    }

    /// <summary>Reads scope: a scope string or an array of them (clause 4.18).</summary>
    public static List<string>? ReadScope(JsonObject obj)
    {
        if (!obj.TryGetPropertyValue("scope", out var node) || node is null)
        {
            return null;
        }

        // Normalized form may wrap scope as a Property.
        if (node is JsonObject wrapped && wrapped["value"] is { } inner)
        {
            node = inner;
        }

        var scopes = new List<string>();
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            scopes.Add(CheckScope(v.GetValue<string>()));
        }
        else if (node is JsonArray array)
        {
            foreach (var item in array)
            {
                if (item is not JsonValue iv || iv.GetValueKind() != JsonValueKind.String)
                {
                    throw NgsiException.BadData("Every scope must be a string such as \"/Madrid/Gardens\".");
                }

                scopes.Add(CheckScope(iv.GetValue<string>()));
            }
        }
        else
        {
            throw NgsiException.BadData("'scope' must be a string or an array of strings.");
        }

        return scopes.Count == 0 ? null : scopes;
    }

    private static string CheckScope(string s) =>
        NgsiText.IsScope(s) ? s : throw NgsiException.BadData($"'{Truncate(s)}' is not a valid scope (e.g. \"/Aizu/Kita\").");

    /// <summary>Parses every attribute member of an entity or fragment.</summary>
    /// <param name="allowNullMarker">Merge-patch: an attribute whose value is "urn:ngsi-ld:null" means delete.</param>
    public static AttributeMap ParseAttributes(JsonObject obj, LdContext context, DateTimeOffset now, bool allowNullMarker)
    {
        var map = new AttributeMap();
        foreach (var (name, value) in obj)
        {
            if (EntityKeywords.Contains(name))
            {
                continue;
            }

            var expanded = ExpandAttributeName(name, context);
            if (map.ContainsKey(expanded))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}' is given twice (after @context expansion).");
            }

            map[expanded] = ParseInstances(name, value, context, now, allowNullMarker, depth: 0);
        }

        return map;
    }

    public static string ExpandAttributeName(string name, LdContext context)
    {
        if (!NgsiText.IsName(name) || name.StartsWith('@'))
        {
            throw NgsiException.BadData($"'{Truncate(name)}' is not a valid attribute name.");
        }

        return context.ExpandTerm(name);
    }

    /// <summary>Parses one attribute: an object, a concise value, or an array of instances (multi-attribute).</summary>
    public static List<AttributeInstance> ParseInstances(string name, JsonNode? value, LdContext context, DateTimeOffset now, bool allowNullMarker, int depth)
    {
        if (value is JsonArray array && array.Count > 0 && array.All(LooksLikeAttributeObject))
        {
            var instances = new List<AttributeInstance>(array.Count);
            foreach (var item in array)
            {
                var instance = ParseInstance(name, item, context, now, allowNullMarker, depth);
                if (instances.Exists(i => i.DatasetId == instance.DatasetId))
                {
                    throw NgsiException.BadData(instance.DatasetId is null
                        ? $"Attribute '{Truncate(name)}' has more than one instance without a datasetId."
                        : $"Attribute '{Truncate(name)}' has datasetId '{Truncate(instance.DatasetId)}' twice.");
                }

                instances.Add(instance);
            }

            return instances;
        }

        return [ParseInstance(name, value, context, now, allowNullMarker, depth)];
    }

    /// <summary>Parses one attribute instance in normalized or concise form (type inferred per clause 4.5.9 rules).</summary>
    public static AttributeInstance ParseInstance(string name, JsonNode? value, LdContext context, DateTimeOffset now, bool allowNullMarker, int depth)
    {
        var fragment = ParseFragment(name, value, context, now, allowNullMarker, depth, partial: false);
        if (!fragment.HasPayload)
        {
            throw NgsiException.BadData($"Attribute '{Truncate(name)}' has no value (one of value, object, languageMap, vocab, json, valueList, objectList).");
        }

        return fragment.Instance;
    }

    /// <summary>
    /// Parses an attribute that may be partial (partial attribute update): its payload or type may be missing.
    /// </summary>
    /// <param name="partial">A partial update: an object without payload changes only the members it names.
    /// Otherwise such an object is a concise Property whose value is the object itself.</param>
    public static AttributeFragment ParseFragment(string name, JsonNode? value, LdContext context, DateTimeOffset now, bool allowNullMarker, int depth, bool partial)
    {
        if (depth > MaxDepth)
        {
            throw NgsiException.BadData("Sub-attributes are nested too deeply.");
        }

        if (value is null)
        {
            throw NgsiException.BadData($"Attribute '{Truncate(name)}' is null; use \"{NgsiText.NullUri}\" to delete it with a merge.");
        }

        if (value is not JsonObject obj)
        {
            // Concise: a bare value is a Property with that value.
            if (value is JsonValue sv && sv.GetValueKind() == JsonValueKind.String && sv.GetValue<string>() == NgsiText.NullUri && !allowNullMarker)
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': \"{NgsiText.NullUri}\" is only allowed in merge operations.");
            }

            return new(new AttributeInstance(AttributeKind.Property, value.DeepClone()) { CreatedAt = now, ModifiedAt = now }, HasPayload: true, HasKind: false);
        }

        var kind = InferKind(name, obj, out var explicitKind, out var bareGeometry);
        if (bareGeometry)
        {
            ValidateGeometry(name, obj);
            return new(new AttributeInstance(AttributeKind.GeoProperty, obj.DeepClone()) { CreatedAt = now, ModifiedAt = now }, true, true);
        }

        var member = AttributeKinds.PayloadMember(kind);
        if (!partial && !explicitKind && kind == AttributeKind.Property && !obj.ContainsKey("value") && !obj.ContainsKey("@value"))
        {
            return new(new AttributeInstance(AttributeKind.Property, obj.DeepClone()) { CreatedAt = now, ModifiedAt = now }, true, false);
        }

        var payload = obj[member];
        if (member == "value" && payload is null)
        {
            payload = obj["@value"];
        }

        var hasPayload = obj.ContainsKey(member) || (member == "value" && obj.ContainsKey("@value"));
        var instance = new AttributeInstance(kind, JsonValue.Create(0)) { CreatedAt = now, ModifiedAt = now };
        if (hasPayload)
        {
            instance.Payload = ValidatePayload(name, kind, payload, context, allowNullMarker);
        }

        instance.DatasetId = ReadOptionalUri(obj, "datasetId", name);
        instance.ObservedAt = ReadOptionalDateTime(obj, "observedAt", name);
        instance.UnitCode = ReadOptionalString(obj, "unitCode", name);
        if (obj.TryGetPropertyValue("objectType", out var objectType))
        {
            if (kind is not (AttributeKind.Relationship or AttributeKind.ListRelationship))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': objectType is only allowed on relationships.");
            }

            instance.ObjectType = ExpandObjectType(name, objectType, context);
        }

        if (obj.TryGetPropertyValue("valueType", out var valueType))
        {
            if (valueType is not JsonValue vt || vt.GetValueKind() != JsonValueKind.String || !NgsiText.IsName(vt.GetValue<string>()))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': valueType must be a type name.");
            }

            instance.ValueType = context.ExpandTerm(vt.GetValue<string>());
        }

        foreach (var (subName, subValue) in obj)
        {
            if (AttributeKeywords.Contains(subName))
            {
                continue;
            }

            var expanded = ExpandAttributeName(subName, context);
            instance.Sub ??= new AttributeMap();
            if (instance.Sub.ContainsKey(expanded))
            {
                throw NgsiException.BadData($"Sub-attribute '{Truncate(subName)}' is given twice.");
            }

            instance.Sub[expanded] = ParseInstances(subName, subValue, context, now, allowNullMarker, depth + 1);
        }

        return new(instance, hasPayload, explicitKind);
    }

    private static bool LooksLikeAttributeObject(JsonNode? node) =>
        node is JsonObject o && (o.ContainsKey("type") || o.ContainsKey("value") || o.ContainsKey("object")
            || o.ContainsKey("languageMap") || o.ContainsKey("vocab") || o.ContainsKey("json")
            || o.ContainsKey("valueList") || o.ContainsKey("objectList") || o.ContainsKey("datasetId"));

    private static AttributeKind InferKind(string name, JsonObject obj, out bool explicitKind, out bool bareGeometry)
    {
        bareGeometry = false;
        explicitKind = false;
        var typeNode = obj["type"] ?? obj["@type"];
        if (typeNode is not null)
        {
            if (typeNode.GetValueKind() == JsonValueKind.String)
            {
                var typeName = typeNode.GetValue<string>();
                if (AttributeKinds.TryParse(typeName, out var kind))
                {
                    explicitKind = true;
                    return kind;
                }

                if (GeoJson.IsGeometryType(typeName) && obj.ContainsKey("coordinates"))
                {
                    bareGeometry = true;
                    return AttributeKind.GeoProperty;
                }

                throw NgsiException.BadData($"Attribute '{Truncate(name)}' has unknown type '{Truncate(typeName)}'.");
            }

            throw NgsiException.BadData($"Attribute '{Truncate(name)}': 'type' must be a string.");
        }

        if (obj.ContainsKey("object")) return AttributeKind.Relationship;
        if (obj.ContainsKey("objectList")) return AttributeKind.ListRelationship;
        if (obj.ContainsKey("languageMap")) return AttributeKind.LanguageProperty;
        if (obj.ContainsKey("vocab")) return AttributeKind.VocabProperty;
        if (obj.ContainsKey("json")) return AttributeKind.JsonProperty;
        if (obj.ContainsKey("valueList")) return AttributeKind.ListProperty;
        if ((obj["value"] ?? obj["@value"]) is JsonObject v && v["type"] is JsonValue t
            && t.GetValueKind() == JsonValueKind.String && GeoJson.IsGeometryType(t.GetValue<string>()) && v.ContainsKey("coordinates"))
        {
            return AttributeKind.GeoProperty;
        }

        return AttributeKind.Property;
    }

    private static JsonNode ValidatePayload(string name, AttributeKind kind, JsonNode? payload, LdContext context, bool allowNullMarker)
    {
        if (payload is null)
        {
            throw NgsiException.BadData($"Attribute '{Truncate(name)}' has a null {AttributeKinds.PayloadMember(kind)}.");
        }

        if (payload is JsonValue nv && nv.GetValueKind() == JsonValueKind.String && nv.GetValue<string>() == NgsiText.NullUri)
        {
            return allowNullMarker
                ? payload.DeepClone()
                : throw NgsiException.BadData($"Attribute '{Truncate(name)}': \"{NgsiText.NullUri}\" is only allowed in merge operations.");
        }

        switch (kind)
        {
            case AttributeKind.Relationship:
                if (payload is JsonArray objects && objects.Count > 0)
                {
                    foreach (var o in objects)
                    {
                        RequireUri(name, o);
                    }
                }
                else
                {
                    RequireUri(name, payload);
                }

                break;
            case AttributeKind.ListRelationship:
                if (payload is not JsonArray list)
                {
                    throw NgsiException.BadData($"Attribute '{Truncate(name)}': objectList must be an array.");
                }

                foreach (var item in list)
                {
                    RequireUri(name, item is JsonObject o ? o["object"] : item);
                }

                break;
            case AttributeKind.GeoProperty:
                if (payload is not JsonObject geometry)
                {
                    throw NgsiException.BadData($"GeoProperty '{Truncate(name)}' must have a GeoJSON geometry as its value.");
                }

                ValidateGeometry(name, geometry);
                break;
            case AttributeKind.LanguageProperty:
                if (payload is not JsonObject languageMap || languageMap.Count == 0)
                {
                    throw NgsiException.BadData($"LanguageProperty '{Truncate(name)}': languageMap must be an object of language tags to strings.");
                }

                foreach (var (tag, text) in languageMap)
                {
                    var ok = text is JsonValue tv ? tv.GetValueKind() == JsonValueKind.String
                        : text is JsonArray ta && ta.All(x => x is JsonValue xv && xv.GetValueKind() == JsonValueKind.String);
                    if (!ok || !IsLanguageTag(tag))
                    {
                        throw NgsiException.BadData($"LanguageProperty '{Truncate(name)}': '{Truncate(tag)}' must be a language tag mapped to a string.");
                    }
                }

                break;
            case AttributeKind.VocabProperty:
                return ExpandVocab(name, payload, context);
            case AttributeKind.JsonProperty:
                break;
            case AttributeKind.ListProperty:
                if (payload is not JsonArray)
                {
                    throw NgsiException.BadData($"ListProperty '{Truncate(name)}': valueList must be an array.");
                }

                break;
            default:
                break;
        }

        return payload.DeepClone();
    }

    private static void ValidateGeometry(string name, JsonObject geometry)
    {
        var error = GeoJson.Validate(geometry);
        if (error is not null)
        {
            throw NgsiException.BadData($"GeoProperty '{Truncate(name)}': {error}");
        }
    }

    private static JsonNode ExpandVocab(string name, JsonNode payload, LdContext context)
    {
        string Expand(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.String && NgsiText.IsName(v.GetValue<string>())
            ? context.ExpandTerm(v.GetValue<string>())
            : throw NgsiException.BadData($"VocabProperty '{Truncate(name)}': vocab must be a term or an array of terms.");

        if (payload is JsonArray array)
        {
            var result = new JsonArray();
            foreach (var item in array)
            {
                result.Add(Expand(item));
            }

            return result;
        }

        return JsonValue.Create(Expand(payload));
    }

    private static JsonNode ExpandObjectType(string name, JsonNode? node, LdContext context)
    {
        string Expand(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.String && NgsiText.IsName(v.GetValue<string>())
            ? context.ExpandTerm(v.GetValue<string>())
            : throw NgsiException.BadData($"Attribute '{Truncate(name)}': objectType must be a type name or an array of them.");

        if (node is JsonArray array)
        {
            var result = new JsonArray();
            foreach (var item in array)
            {
                result.Add(Expand(item));
            }

            return result;
        }

        return JsonValue.Create(Expand(node));
    }

    private static void RequireUri(string name, JsonNode? node)
    {
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.String || !NgsiText.IsUri(v.GetValue<string>()))
        {
            throw NgsiException.BadData($"Relationship '{Truncate(name)}' must point at a URI.");
        }
    }

    private static string? ReadOptionalUri(JsonObject obj, string member, string name)
    {
        var s = ReadOptionalString(obj, member, name);
        return s is null || NgsiText.IsUri(s) ? s : throw NgsiException.BadData($"Attribute '{Truncate(name)}': {member} must be a URI.");
    }

    private static string? ReadOptionalDateTime(JsonObject obj, string member, string name)
    {
        var s = ReadOptionalString(obj, member, name);
        if (s is null)
        {
            return null;
        }

        return NgsiText.TryParseDateTime(s, out var instant)
            ? NgsiText.FormatDateTime(instant)
            : throw NgsiException.BadData($"Attribute '{Truncate(name)}': {member} '{Truncate(s)}' is not an ISO 8601 date-time with a time zone.");
    }

    private static string? ReadOptionalString(JsonObject obj, string member, string name)
    {
        if (!obj.TryGetPropertyValue(member, out var node))
        {
            return null;
        }

        return node is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw NgsiException.BadData($"Attribute '{Truncate(name)}': {member} must be a string.");
    }

    private static bool IsLanguageTag(string tag)
    {
        if (tag.Length is 0 or > 35)
        {
            return false;
        }

        if (tag == "@none")
        {
            return true;
        }

        foreach (var c in tag)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-')
            {
                return false;
            }
        }

        return char.IsAsciiLetter(tag[0]);
    }

    internal static string Truncate(string s) => s.Length <= 80 ? s : string.Concat(s.AsSpan(0, 77), "...");
}

/// <summary>A parsed attribute that may lack its payload or explicit type (partial updates).</summary>
public readonly record struct AttributeFragment(AttributeInstance Instance, bool HasPayload, bool HasKind);
