using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Model;

/// <summary>
/// Turns request bodies in normalized or concise representation (clauses 4.5, 5.2) into the model, expanding
/// names with the request's @context and validating every member. Works on the parsed document
/// (<see cref="JsonElement"/>) and keeps payloads as their raw UTF-8 text, so parsing allocates little beyond the
/// model itself. Never throws anything but <see cref="NgsiException"/>.
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

    /// <summary>Parses an entity (create, replace, batch items) or, with <paramref name="fragment"/>, the
    /// fragment of one that merge and batch update carry: type optional (no types: an empty list).</summary>
    /// <param name="idFromPath">The id given by the URL; a body id must then agree.</param>
    /// <param name="allowNullMarker">Merge-patch: "urn:ngsi-ld:null" marks an attribute for deletion.</param>
    public static Entity ParseEntity(JsonElement body, LdContext context, DateTimeOffset now, string? idFromPath = null, bool fragment = false, bool allowNullMarker = false)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("An entity must be a JSON object.");
        }

        var id = ReadId(body, idFromPath);
        var types = ReadTypes(body, context, required: !fragment) ?? [];
        return new Entity(id, types)
        {
            CreatedAt = now,
            ModifiedAt = now,
            Scope = ReadScope(body),
            Attributes = ParseAttributes(body, context, now, allowNullMarker),
        };
    }

    /// <summary>Reads the entity id (id or @id), required unless given by the URL.</summary>
    public static string ReadId(JsonElement obj, string? idFromPath)
    {
        if (!TryMember(obj, "id", "@id", out var idNode))
        {
            return idFromPath ?? throw NgsiException.BadData("The entity has no 'id'.");
        }

        if (idNode.ValueKind != JsonValueKind.String)
        {
            throw NgsiException.BadData("The entity 'id' must be a string holding a URI.");
        }

        var id = Text(idNode);
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
    public static List<string>? ReadTypes(JsonElement obj, LdContext context, bool required)
    {
        if (!TryMember(obj, "type", "@type", out var node))
        {
            return required ? throw NgsiException.BadData("The entity has no 'type'.") : null;
        }

        var types = new List<string>(1);
        if (node.ValueKind == JsonValueKind.String)
        {
            types.Add(ExpandType(Text(node), context));
        }
        else if (node.ValueKind == JsonValueKind.Array && node.GetArrayLength() > 0)
        {
            foreach (var item in node.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                {
                    throw NgsiException.BadData("Every entity type must be a string.");
                }

                var t = ExpandType(Text(item), context);
                if (!types.Contains(t))
                {
                    types.Add(t);
                }
            }
        }
        else
        {
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
    public static List<string>? ReadScope(JsonElement obj)
    {
        if (!obj.TryGetProperty("scope", out var node) || node.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        // Normalized form may wrap scope as a Property.
        if (node.ValueKind == JsonValueKind.Object && node.TryGetProperty("value", out var inner))
        {
            node = inner;
        }

        var scopes = new List<string>();
        if (node.ValueKind == JsonValueKind.String)
        {
            scopes.Add(CheckScope(Text(node)));
        }
        else if (node.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in node.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                {
                    throw NgsiException.BadData("Every scope must be a string such as \"/Madrid/Gardens\".");
                }

                scopes.Add(CheckScope(Text(item)));
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
    public static AttributeMap ParseAttributes(JsonElement obj, LdContext context, DateTimeOffset now, bool allowNullMarker)
    {
        if (obj.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("The body must be a JSON object.");
        }

        var map = new AttributeMap(obj.GetPropertyCount());
        foreach (var member in obj.EnumerateObject())
        {
            var name = JsonText.Name(member);
            if (EntityKeywords.Contains(name))
            {
                continue;
            }

            var expanded = ExpandAttributeName(name, context);
            if (map.ContainsKey(expanded))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}' is given twice (after @context expansion).");
            }

            map[expanded] = ParseInstances(name, member.Value, context, now, allowNullMarker, depth: 0);
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
    public static List<AttributeInstance> ParseInstances(string name, JsonElement value, LdContext context, DateTimeOffset now, bool allowNullMarker, int depth)
    {
        if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0 && AllAttributeObjects(value))
        {
            var instances = new List<AttributeInstance>(value.GetArrayLength());
            foreach (var item in value.EnumerateArray())
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
    public static AttributeInstance ParseInstance(string name, JsonElement value, LdContext context, DateTimeOffset now, bool allowNullMarker, int depth)
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
    public static AttributeFragment ParseFragment(string name, JsonElement value, LdContext context, DateTimeOffset now, bool allowNullMarker, int depth, bool partial)
    {
        if (depth > MaxDepth)
        {
            throw NgsiException.BadData("Sub-attributes are nested too deeply.");
        }

        if (value.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            throw NgsiException.BadData($"Attribute '{Truncate(name)}' is null; use \"{NgsiText.NullUri}\" to delete it with a merge.");
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            // Concise: a bare value is a Property with that value.
            if (!allowNullMarker && IsNullUri(value))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': \"{NgsiText.NullUri}\" is only allowed in merge operations.");
            }

            return new(Stored(AttributeKind.Property, value, now), HasPayload: true, HasKind: false);
        }

        var members = AttributeMembers.Of(value);
        var kind = InferKind(name, members, out var explicitKind, out var bareGeometry);
        if (bareGeometry)
        {
            ValidateGeometry(name, value);
            return new(Stored(AttributeKind.GeoProperty, value, now), true, true);
        }

        var payload = members.Payload(kind);
        var hasPayload = payload.HasValue;
        if (!partial && !explicitKind && kind == AttributeKind.Property && !hasPayload)
        {
            return new(Stored(AttributeKind.Property, value, now), true, false);
        }

        var instance = hasPayload
            ? ValidatePayload(name, kind, payload!.Value, context, allowNullMarker, now)
            : new AttributeInstance(kind, JsonValue.Create(0)) { CreatedAt = now, ModifiedAt = now };
        instance.DatasetId = OptionalUri(members.DatasetId, "datasetId", name);
        instance.ObservedAt = OptionalDateTime(members.ObservedAt, "observedAt", name);
        instance.UnitCode = OptionalString(members.UnitCode, "unitCode", name, shared: true);
        if (members.ObjectType is { } objectType)
        {
            if (kind is not (AttributeKind.Relationship or AttributeKind.ListRelationship))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': objectType is only allowed on relationships.");
            }

            instance.ObjectType = ExpandNames(name, objectType, context, "objectType must be a type name or an array of them");
        }

        if (members.ValueType is { } valueType)
        {
            if (valueType.ValueKind != JsonValueKind.String || !NgsiText.IsName(Text(valueType)))
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': valueType must be a type name.");
            }

            instance.ValueType = context.ExpandTerm(Text(valueType));
        }

        if (members.HasSubAttributes)
        {
            foreach (var sub in value.EnumerateObject())
            {
                var subName = JsonText.Name(sub);
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

                instance.Sub[expanded] = ParseInstances(subName, sub.Value, context, now, allowNullMarker, depth + 1);
            }
        }

        return new(instance, hasPayload, explicitKind);
    }

    /// <summary>An instance whose payload is the element's JSON text, copied as is.</summary>
    private static AttributeInstance Stored(AttributeKind kind, JsonElement payload, DateTimeOffset now)
    {
        var instance = AttributeInstance.FromStored(kind, JsonMarshal.GetRawUtf8Value(payload).ToArray());
        instance.CreatedAt = now;
        instance.ModifiedAt = now;
        return instance;
    }

    /// <summary>An array whose items all look like attribute instances is a multi-attribute, not a value.</summary>
    private static bool AllAttributeObjects(JsonElement array)
    {
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !(item.TryGetProperty("type", out _) || item.TryGetProperty("datasetId", out _)
                || AttributeKinds.ByPayloadMember.Any(p => item.TryGetProperty(p.Member, out _))))
            {
                return false;
            }
        }

        return true;
    }

    private static AttributeKind InferKind(string name, in AttributeMembers members, out bool explicitKind, out bool bareGeometry)
    {
        bareGeometry = false;
        explicitKind = false;
        if (members.Type is { } typeNode)
        {
            if (typeNode.ValueKind != JsonValueKind.String)
            {
                throw NgsiException.BadData($"Attribute '{Truncate(name)}': 'type' must be a string.");
            }

            var typeName = Text(typeNode, shared: true);
            if (AttributeKinds.TryParse(typeName, out var kind))
            {
                explicitKind = true;
                return kind;
            }

            if (GeoJsonGeometry.IsGeometryType(typeName) && members.HasCoordinates)
            {
                bareGeometry = true;
                return AttributeKind.GeoProperty;
            }

            throw NgsiException.BadData($"Attribute '{Truncate(name)}' has unknown type '{Truncate(typeName)}'.");
        }

        if (members.ImpliedKind is { } implied)
        {
            return implied;
        }

        if (members.Value is { ValueKind: JsonValueKind.Object } v
            && v.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            && GeoJsonGeometry.IsGeometryType(Text(t, shared: true)) && v.TryGetProperty("coordinates", out _))
        {
            return AttributeKind.GeoProperty;
        }

        return AttributeKind.Property;
    }

    /// <summary>
    /// The members of an attribute object that are not sub-attributes, found in one pass over its members (of two
    /// with one name the last counts, as <see cref="JsonElement.TryGetProperty(string, out JsonElement)"/> finds it).
    /// </summary>
    private struct AttributeMembers
    {
        public JsonElement? Type;
        public JsonElement? Value;
        public JsonElement? Object;
        public JsonElement? ObjectList;
        public JsonElement? LanguageMap;
        public JsonElement? Vocab;
        public JsonElement? Json;
        public JsonElement? ValueList;
        public JsonElement? DatasetId;
        public JsonElement? ObservedAt;
        public JsonElement? UnitCode;
        public JsonElement? ObjectType;
        public JsonElement? ValueType;
        public bool HasCoordinates;

        /// <summary>A member that is no keyword: a sub-attribute (or, beside a bare geometry, "coordinates").</summary>
        public bool HasSubAttributes;

        public static AttributeMembers Of(JsonElement obj)
        {
            var members = default(AttributeMembers);
            JsonElement? atType = null;
            JsonElement? atValue = null;
            foreach (var member in obj.EnumerateObject())
            {
                var name = JsonText.Name(member);
                switch (name)
                {
                    case "type": members.Type = member.Value; break;
                    case "@type": atType = member.Value; break;
                    case "value": members.Value = member.Value; break;
                    case "@value": atValue = member.Value; break;
                    case "object": members.Object = member.Value; break;
                    case "objectList": members.ObjectList = member.Value; break;
                    case "languageMap": members.LanguageMap = member.Value; break;
                    case "vocab": members.Vocab = member.Value; break;
                    case "json": members.Json = member.Value; break;
                    case "valueList": members.ValueList = member.Value; break;
                    case "datasetId": members.DatasetId = member.Value; break;
                    case "observedAt": members.ObservedAt = member.Value; break;
                    case "unitCode": members.UnitCode = member.Value; break;
                    case "objectType": members.ObjectType = member.Value; break;
                    case "valueType": members.ValueType = member.Value; break;
                    default:
                        members.HasCoordinates |= name == "coordinates";
                        members.HasSubAttributes |= !AttributeKeywords.Contains(name);
                        break;
                }
            }

            members.Type ??= atType;
            members.Value ??= atValue;
            return members;
        }

        /// <summary>The kind a payload member other than value implies (clause 4.5.9), in <see cref="AttributeKinds.ByPayloadMember"/>'s order.</summary>
        public readonly AttributeKind? ImpliedKind =>
            Object.HasValue ? AttributeKind.Relationship
            : ObjectList.HasValue ? AttributeKind.ListRelationship
            : LanguageMap.HasValue ? AttributeKind.LanguageProperty
            : Vocab.HasValue ? AttributeKind.VocabProperty
            : Json.HasValue ? AttributeKind.JsonProperty
            : ValueList.HasValue ? AttributeKind.ListProperty
            : null;

        /// <summary>The member that carries a payload of this kind (<see cref="AttributeKinds.PayloadMember"/>).</summary>
        public readonly JsonElement? Payload(AttributeKind kind) => kind switch
        {
            AttributeKind.Relationship => Object,
            AttributeKind.LanguageProperty => LanguageMap,
            AttributeKind.VocabProperty => Vocab,
            AttributeKind.JsonProperty => Json,
            AttributeKind.ListProperty => ValueList,
            AttributeKind.ListRelationship => ObjectList,
            _ => Value,
        };
    }

    private static AttributeInstance ValidatePayload(string name, AttributeKind kind, JsonElement payload, LdContext context, bool allowNullMarker, DateTimeOffset now)
    {
        if (payload.ValueKind == JsonValueKind.Null)
        {
            throw NgsiException.BadData($"Attribute '{Truncate(name)}' has a null {AttributeKinds.PayloadMember(kind)}.");
        }

        if (IsNullUri(payload))
        {
            return allowNullMarker
                ? Stored(kind, payload, now)
                : throw NgsiException.BadData($"Attribute '{Truncate(name)}': \"{NgsiText.NullUri}\" is only allowed in merge operations.");
        }

        switch (kind)
        {
            case AttributeKind.Relationship:
                if (payload.ValueKind == JsonValueKind.Array && payload.GetArrayLength() > 0)
                {
                    foreach (var o in payload.EnumerateArray())
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
                if (payload.ValueKind != JsonValueKind.Array)
                {
                    throw NgsiException.BadData($"Attribute '{Truncate(name)}': objectList must be an array.");
                }

                foreach (var item in payload.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Object)
                    {
                        RequireUri(name, item.TryGetProperty("object", out var o) ? o : default);
                    }
                    else
                    {
                        RequireUri(name, item);
                    }
                }

                break;
            case AttributeKind.GeoProperty:
                if (payload.ValueKind != JsonValueKind.Object)
                {
                    throw NgsiException.BadData($"GeoProperty '{Truncate(name)}' must have a GeoJSON geometry as its value.");
                }

                ValidateGeometry(name, payload);
                break;
            case AttributeKind.LanguageProperty:
                if (payload.ValueKind != JsonValueKind.Object || !payload.EnumerateObject().Any())
                {
                    throw NgsiException.BadData($"LanguageProperty '{Truncate(name)}': languageMap must be an object of language tags to strings.");
                }

                foreach (var entry in payload.EnumerateObject())
                {
                    var text = entry.Value;
                    var ok = text.ValueKind == JsonValueKind.String
                        || (text.ValueKind == JsonValueKind.Array && text.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String));
                    if (!ok || !IsLanguageTag(entry.Name))
                    {
                        throw NgsiException.BadData($"LanguageProperty '{Truncate(name)}': '{Truncate(entry.Name)}' must be a language tag mapped to a string.");
                    }
                }

                break;
            case AttributeKind.VocabProperty:
                return new AttributeInstance(kind, ExpandNames(name, payload, context, "vocab must be a term or an array of terms"))
                {
                    CreatedAt = now,
                    ModifiedAt = now,
                };
            case AttributeKind.ListProperty:
                if (payload.ValueKind != JsonValueKind.Array)
                {
                    throw NgsiException.BadData($"ListProperty '{Truncate(name)}': valueList must be an array.");
                }

                break;
            default:
                break;
        }

        return Stored(kind, payload, now);
    }

    private static void ValidateGeometry(string name, JsonElement geometry)
    {
        try
        {
            GeoJsonGeometry.Parse(geometry);
        }
        catch (NgsiException ex)
        {
            throw NgsiException.BadData($"GeoProperty '{Truncate(name)}': {ex.Message}");
        }
    }

    /// <summary>Expands a term or an array of terms (vocab values, objectType).</summary>
    private static JsonNode ExpandNames(string name, JsonElement node, LdContext context, string problem)
    {
        string Expand(JsonElement n) => n.ValueKind == JsonValueKind.String && NgsiText.IsName(Text(n))
            ? context.ExpandTerm(Text(n))
            : throw NgsiException.BadData($"Attribute '{Truncate(name)}': {problem}.");

        if (node.ValueKind == JsonValueKind.Array)
        {
            var result = new JsonArray();
            foreach (var item in node.EnumerateArray())
            {
                result.Add(Expand(item));
            }

            return result;
        }

        return JsonValue.Create(Expand(node));
    }

    private static void RequireUri(string name, JsonElement node)
    {
        if (node.ValueKind != JsonValueKind.String || !IsUriText(node))
        {
            throw NgsiException.BadData($"Relationship '{Truncate(name)}' must point at a URI.");
        }
    }

    private static bool IsUriText(JsonElement node)
    {
        try
        {
            return JsonText.Satisfies(node, NgsiText.IsUri);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static string? OptionalUri(JsonElement? node, string member, string name)
    {
        var s = OptionalString(node, member, name, shared: true);
        return s is null || NgsiText.IsUri(s) ? s : throw NgsiException.BadData($"Attribute '{Truncate(name)}': {member} must be a URI.");
    }

    private static string? OptionalDateTime(JsonElement? node, string member, string name)
    {
        var s = OptionalString(node, member, name);
        if (s is null)
        {
            return null;
        }

        return NgsiText.CanonicalDateTime(s)
            ?? throw NgsiException.BadData($"Attribute '{Truncate(name)}': {member} '{Truncate(s)}' is not an ISO 8601 date-time with a time zone.");
    }

    /// <param name="shared">The text is one bodies repeat (a unit code, a dataset id): see <see cref="JsonText"/>.</param>
    private static string? OptionalString(JsonElement? node, string member, string name, bool shared = false)
    {
        if (node is not { } text)
        {
            return null;
        }

        return text.ValueKind == JsonValueKind.String
            ? Text(text, shared)
            : throw NgsiException.BadData($"Attribute '{Truncate(name)}': {member} must be a string.");
    }

    private static bool TryMember(JsonElement obj, string name, string alias, out JsonElement value) =>
        obj.TryGetProperty(name, out value) || obj.TryGetProperty(alias, out value);

    private static bool IsNullUri(JsonElement value) =>
        value.ValueKind == JsonValueKind.String && value.ValueEquals(NgsiText.NullUri);

    /// <summary>A string's text; text that cannot be decoded (an unpaired surrogate escape) is bad data.</summary>
    /// <param name="shared">The text is one bodies repeat: read it as a shared string (<see cref="JsonText"/>).</param>
    private static string Text(JsonElement value, bool shared = false)
    {
        try
        {
            return shared ? JsonText.String(value) : value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw NgsiException.BadData("A string in the body is not valid text (unpaired UTF-16 surrogate).");
        }
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
