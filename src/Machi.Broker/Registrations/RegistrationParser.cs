using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;

namespace Machi.Broker.Registrations;

/// <summary>
/// Reads and checks context source registrations (CSourceRegistration, clause 5.2.9) and writes them back. Member
/// checks happen when a body is read; the rules that tie members together (required members, what each mode
/// demands) when the whole registration is built, so that an update is checked as the registration it produces.
/// </summary>
internal static class RegistrationParser
{
    public const string IdPrefix = "urn:ngsi-ld:ContextSourceRegistration:";
    public const string TypeName = "ContextSourceRegistration";

    /// <summary>Members the broker maintains; ignored when a client sends them.</summary>
    private static readonly HashSet<string> ReadOnlyMembers = new(StringComparer.Ordinal)
    {
        "status", "timesSent", "timesFailed", "lastSuccess", "lastFailure", "createdAt", "modifiedAt",
    };

    /// <summary>The operations of Table 4.20-1 that a registration may name.</summary>
    private static readonly HashSet<string> KnownOperations = new(StringComparer.Ordinal)
    {
        "createEntity", "updateEntity", "appendAttrs", "updateAttrs", "deleteAttrs", "deleteEntity", "createBatch", "upsertBatch",
        "updateBatch", "deleteBatch", "upsertTemporal", "appendAttrsTemporal", "deleteAttrsTemporal", "updateAttrsTemporal",
        "deleteAttrInstanceTemporal", "deleteTemporal", "mergeEntity", "replaceEntity", "replaceAttrs", "mergeBatch", "purgeEntity",
        "retrieveEntity", "queryEntity", "queryBatch", "retrieveTemporal", "queryTemporal", "retrieveEntityTypes",
        "retrieveEntityTypeDetails", "retrieveEntityTypeInfo", "retrieveAttrTypes", "retrieveAttrTypeDetails", "retrieveAttrTypeInfo",
        "createSubscription", "updateSubscription", "retrieveSubscription", "querySubscription", "deleteSubscription",
        "retrieveEntityMap", "updateEntityMap", "deleteEntityMap",
    };

    private static readonly string[] RetrieveOps = ["retrieveEntity", "queryEntity"];

    private static readonly string[] DiscoveryOps =
    [
        "retrieveEntityTypes", "retrieveEntityTypeDetails", "retrieveEntityTypeInfo", "retrieveAttrTypes", "retrieveAttrTypeDetails", "retrieveAttrTypeInfo",
    ];

    /// <summary>The operation groups of clause 4.20 and what each stands for.</summary>
    private static readonly Dictionary<string, string[]> OperationGroups = new(StringComparer.Ordinal)
    {
        ["retrieveOps"] = RetrieveOps,
        ["updateOps"] = ["updateEntity", "updateAttrs", "replaceEntity", "replaceAttrs"],
        ["federationOps"] =
        [
            .. RetrieveOps, "queryBatch", .. DiscoveryOps,
            "createSubscription", "updateSubscription", "retrieveSubscription", "querySubscription", "deleteSubscription",
        ],
        ["redirectionOps"] =
        [
            "createEntity", "updateEntity", "appendAttrs", "updateAttrs", "deleteAttrs", "deleteEntity", "mergeEntity",
            "replaceEntity", "replaceAttrs", .. RetrieveOps, .. DiscoveryOps,
        ],
    };

    /// <summary>Operations that read only; the only ones an auxiliary source may serve.</summary>
    private static readonly HashSet<string> ReadOperations = new(
    [
        .. RetrieveOps, "queryBatch", "retrieveTemporal", "queryTemporal", .. DiscoveryOps,
        "createSubscription", "updateSubscription", "retrieveSubscription", "querySubscription", "deleteSubscription", "retrieveEntityMap",
    ], StringComparer.Ordinal);

    /// <summary>Reads a registration body (or, with <paramref name="fragment"/>, the members an update changes):
    /// every member checked, names expanded with <paramref name="context"/>.</summary>
    public static JsonObject ParseMembers(JsonElement body, LdContext context, bool fragment)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw NgsiException.BadData("A context source registration must be a JSON object.");
        }

        var doc = new JsonObject();
        foreach (var member in body.EnumerateObject())
        {
            var value = member.Value;
            switch (member.Name)
            {
                case "@context":
                case var readOnly when ReadOnlyMembers.Contains(readOnly):
                    break;
                case "id":
                    doc["id"] = NgsiText.IsUri(Text(value)) ? Text(value) : throw Bad("id must be a URI.");
                    break;
                case "type":
                    doc["type"] = Text(value) == TypeName ? TypeName : throw Bad($"type must be \"{TypeName}\".");
                    break;
                case "registrationName" or "description" or "refreshRate":
                    doc[member.Name] = NonEmptyText(value, member.Name);
                    break;
                case "information":
                    doc["information"] = ParseInformation(value, context);
                    break;
                case "tenant":
                    var tenant = Text(value);
                    doc["tenant"] = IsTenant(tenant) ? tenant : throw Bad("tenant must be 1–64 characters of letters, digits, '_', '-' or '.'.");
                    break;
                case "observationInterval" or "managementInterval":
                    doc[member.Name] = ParseInterval(value, member.Name);
                    break;
                case "location" or "observationSpace" or "operationSpace":
                    GeoJsonGeometry.Parse(value);
                    doc[member.Name] = JsonNode.Parse(value.GetRawText());
                    break;
                case "expiresAt":
                    doc["expiresAt"] = DateTime(value, "expiresAt");
                    break;
                case "endpoint":
                    doc["endpoint"] = ParseEndpoint(value);
                    break;
                case "contextSourceInfo":
                    doc["contextSourceInfo"] = ParseKeyValues(value);
                    break;
                case "scope":
                    var scopes = EntityParser.ReadScope(body);
                    doc["scope"] = scopes is null ? null : new JsonArray([.. scopes.Select(s => JsonValue.Create(s))]);
                    break;
                case "mode":
                    _ = ParseMode(value);
                    doc["mode"] = Text(value);
                    break;
                case "operations":
                    doc["operations"] = ParseOperations(value);
                    break;
                case "management":
                    doc["management"] = ParseManagement(value);
                    break;
                default:
                    // A registration may carry further properties of its own (queried with csf).
                    doc[EntityParser.ExpandAttributeName(member.Name, context)] = JsonNode.Parse(value.GetRawText());
                    break;
            }
        }

        if (!fragment && !doc.ContainsKey("type"))
        {
            throw Bad($"A registration needs \"type\": \"{TypeName}\".");
        }

        return doc;
    }

    /// <summary>Builds the routing view of a whole registration document and checks the rules across members.</summary>
    public static CSourceRegistration Build(JsonObject doc, DateTimeOffset createdAt, DateTimeOffset modifiedAt)
    {
        var id = doc["id"]?.GetValue<string>() ?? throw Bad("A registration needs an id.");
        var information = ReadInformation(doc["information"] as JsonArray ?? throw Bad("A registration needs information: a non-empty array."));
        var endpoint = new Uri(doc["endpoint"]?.GetValue<string>() ?? throw Bad("A registration needs an endpoint URI."));
        var mode = doc["mode"] is { } m ? ParseMode(m.GetValue<string>()) : RegistrationMode.Inclusive;
        var operations = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in (doc["operations"] as JsonArray)?.Select(o => o!.GetValue<string>()) ?? ["federationOps"])
        {
            if (OperationGroups.TryGetValue(name, out var members))
            {
                operations.UnionWith(members);
            }
            else
            {
                operations.Add(name);
            }
        }

        switch (mode)
        {
            case RegistrationMode.Exclusive:
                // Proxied attributes need an owner that is exactly known: named entities, named attributes (4.3.6.3).
                foreach (var info in information)
                {
                    if (info.Attributes is null || info.Entities is null || info.Entities.Any(e => e.Id is null))
                    {
                        throw Bad("An exclusive registration must name the entity id of every entity and at least one attribute (propertyNames or relationshipNames) in each information item.");
                    }
                }

                break;
            case RegistrationMode.Redirect:
                if (information.Any(i => i.Entities is null))
                {
                    throw Bad("A redirect registration must name the entity types it redirects in each information item.");
                }

                break;
            case RegistrationMode.Auxiliary:
                if (operations.FirstOrDefault(o => !ReadOperations.Contains(o)) is { } write)
                {
                    throw Bad($"An auxiliary registration may only offer reading operations, not '{write}'.");
                }

                break;
            default:
                break;
        }

        var management = doc["management"] as JsonObject;
        return new CSourceRegistration
        {
            Id = id,
            Document = doc,
            Information = information,
            Endpoint = endpoint,
            Mode = mode,
            Operations = operations,
            Tenant = doc["tenant"]?.GetValue<string>(),
            ExpiresAt = doc["expiresAt"] is { } at ? Instant(at.GetValue<string>()) : null,
            Timeout = Milliseconds(management?["timeout"]),
            Cooldown = Milliseconds(management?["cooldown"]),
            CreatedAt = createdAt,
            ModifiedAt = modifiedAt,
        };
    }

    /// <summary>Writes a registration with names compacted for the request's context.</summary>
    public static void Write(Utf8JsonWriter w, CSourceRegistration registration, LdContext context, RegistrationStatus? status, bool sysAttrs, bool includeContext)
    {
        w.WriteStartObject();
        foreach (var (name, value) in registration.Document)
        {
            switch (name)
            {
                case "information":
                    WriteInformation(w, registration.Information, context);
                    break;
                default:
                    w.WritePropertyName(IsCoreMember(name) ? name : context.CompactIri(name));
                    if (value is null)
                    {
                        w.WriteNullValue();
                    }
                    else
                    {
                        value.WriteTo(w);
                    }

                    break;
            }
        }

        if (status is not null)
        {
            status.WriteTo(w);
        }

        if (sysAttrs)
        {
            w.WriteString("createdAt", NgsiText.FormatDateTime(registration.CreatedAt));
            w.WriteString("modifiedAt", NgsiText.FormatDateTime(registration.ModifiedAt));
        }

        if (includeContext)
        {
            EntityRenderer.WriteContext(w, context);
        }

        w.WriteEndObject();
    }

    public static Regex CompilePattern(string pattern) =>
        new(pattern, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, TimeSpan.FromSeconds(1));

    /// <summary>The information items of a stored document.</summary>
    private static List<RegistrationInfo> ReadInformation(JsonArray items)
    {
        var list = new List<RegistrationInfo>(items.Count);
        foreach (var item in items.OfType<JsonObject>())
        {
            List<RegistrationEntity>? entities = null;
            if (item["entities"] is JsonArray array)
            {
                entities = [.. array.OfType<JsonObject>().Select(e => new RegistrationEntity(
                    e["id"]?.GetValue<string>(),
                    e["idPattern"]?.GetValue<string>(),
                    e["type"] is JsonArray types ? [.. types.Select(t => t!.GetValue<string>())] : [e["type"]!.GetValue<string>()]))];
            }

            list.Add(new RegistrationInfo(entities, Names(item["propertyNames"]), Names(item["relationshipNames"])));
        }

        return list.Count > 0 ? list : throw Bad("information must be a non-empty array.");

        static List<string>? Names(JsonNode? node) => node is JsonArray a ? [.. a.Select(n => n!.GetValue<string>())] : null;
    }

    private static JsonArray ParseInformation(JsonElement value, LdContext context)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Bad("information must be a non-empty array of RegistrationInfo objects.");
        }

        var items = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Bad("Every information item must be an object with entities, propertyNames and/or relationshipNames.");
            }

            var parsed = new JsonObject();
            foreach (var member in item.EnumerateObject())
            {
                parsed[member.Name] = member.Name switch
                {
                    "entities" => ParseEntities(member.Value, context),
                    "propertyNames" or "relationshipNames" => ParseNames(member.Value, member.Name, context),
                    _ => throw Bad($"information: '{EntityParser.Truncate(member.Name)}' is not a member of RegistrationInfo (entities, propertyNames, relationshipNames)."),
                };
            }

            items.Add(parsed.Count > 0 ? parsed : throw Bad("An information item must name entities, propertyNames or relationshipNames."));
        }

        return items;
    }

    private static JsonArray ParseEntities(JsonElement value, LdContext context)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Bad("information.entities must be a non-empty array of EntityInfo objects.");
        }

        var list = new JsonArray();
        foreach (var entity in value.EnumerateArray())
        {
            if (entity.ValueKind != JsonValueKind.Object)
            {
                throw Bad("Every EntityInfo must be an object with type and optionally id or idPattern.");
            }

            var parsed = new JsonObject();
            foreach (var member in entity.EnumerateObject())
            {
                switch (member.Name)
                {
                    case "id":
                        parsed["id"] = NgsiText.IsUri(Text(member.Value)) ? Text(member.Value) : throw Bad("EntityInfo id must be a URI.");
                        break;
                    case "idPattern":
                        var pattern = NonEmptyText(member.Value, "idPattern");
                        try
                        {
                            CompilePattern(pattern);
                        }
                        catch (ArgumentException ex)
                        {
                            throw Bad($"idPattern is not a valid regular expression: {ex.Message}");
                        }
                        catch (NotSupportedException ex)
                        {
                            throw Bad($"idPattern uses a construct this broker does not support: {ex.Message}");
                        }

                        parsed["idPattern"] = pattern;
                        break;
                    case "type":
                        parsed["type"] = member.Value.ValueKind == JsonValueKind.Array
                            ? ParseNames(member.Value, "type", context, attribute: false)
                            : JsonValue.Create(context.ExpandTerm(Name(member.Value, "type")));
                        break;
                    default:
                        throw Bad($"EntityInfo: '{EntityParser.Truncate(member.Name)}' is not a member (id, idPattern, type).");
                }
            }

            if (!parsed.ContainsKey("type"))
            {
                throw Bad("Every EntityInfo of a registration needs a type.");
            }

            if (parsed.ContainsKey("id") && parsed.ContainsKey("idPattern"))
            {
                throw Bad("An EntityInfo has either id or idPattern, not both.");
            }

            list.Add(parsed);
        }

        return list;
    }

    private static JsonArray ParseNames(JsonElement value, string member, LdContext context, bool attribute = true)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Bad($"{member} must be a non-empty array of names.");
        }

        var names = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            var name = Name(item, member);
            names.Add(attribute ? EntityParser.ExpandAttributeName(name, context) : context.ExpandTerm(name));
        }

        return names;
    }

    private static string ParseEndpoint(JsonElement value)
    {
        var text = Text(value);
        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && !string.IsNullOrEmpty(uri.Host)
            && string.IsNullOrEmpty(uri.Query) && string.IsNullOrEmpty(uri.Fragment)
            ? text
            : throw Bad("endpoint must be an absolute http or https URI (the context source's API root, without query or fragment).");
    }

    private static JsonObject ParseInterval(JsonElement value, string member)
    {
        if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty("startAt", out var start))
        {
            throw Bad($"{member} must be an object with startAt and optionally endAt.");
        }

        var interval = new JsonObject { ["startAt"] = DateTime(start, member + ".startAt") };
        foreach (var m in value.EnumerateObject())
        {
            if (m.Name is not ("startAt" or "endAt"))
            {
                throw Bad($"{member}: '{EntityParser.Truncate(m.Name)}' is not a member (startAt, endAt).");
            }
        }

        if (value.TryGetProperty("endAt", out var end))
        {
            var endAt = DateTime(end, member + ".endAt");
            if (Instant(endAt) <= Instant(interval["startAt"]!.GetValue<string>()))
            {
                throw Bad($"{member}: endAt must be after startAt.");
            }

            interval["endAt"] = endAt;
        }

        return interval;
    }

    private static JsonArray ParseKeyValues(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Bad("contextSourceInfo must be an array of {\"key\": …, \"value\": …} objects.");
        }

        var list = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || item.EnumerateObject().Count() != 2
                || !item.TryGetProperty("key", out var key) || !item.TryGetProperty("value", out var v)
                || key.ValueKind != JsonValueKind.String || v.ValueKind != JsonValueKind.String || key.GetString()!.Length == 0)
            {
                throw Bad("Every contextSourceInfo item must be {\"key\": \"…\", \"value\": \"…\"} with string members.");
            }

            list.Add(new JsonObject { ["key"] = key.GetString(), ["value"] = v.GetString() });
        }

        return list;
    }

    private static RegistrationMode ParseMode(JsonElement value) => ParseMode(Text(value));

    private static RegistrationMode ParseMode(string? text) => text switch
    {
        "inclusive" => RegistrationMode.Inclusive,
        "exclusive" => RegistrationMode.Exclusive,
        "redirect" => RegistrationMode.Redirect,
        "auxiliary" => RegistrationMode.Auxiliary,
        _ => throw Bad("mode must be inclusive, exclusive, redirect or auxiliary."),
    };

    private static JsonArray ParseOperations(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Bad("operations must be a non-empty array of operation names or groups (federationOps, updateOps, retrieveOps, redirectionOps).");
        }

        var list = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            var name = Text(item);
            list.Add(name is not null && (KnownOperations.Contains(name) || OperationGroups.ContainsKey(name))
                ? name
                : throw Bad($"operations: '{EntityParser.Truncate(name ?? item.GetRawText())}' is not an NGSI-LD operation or operation group."));
        }

        return list;
    }

    private static JsonObject ParseManagement(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad("management must be an object (localOnly, cacheDuration, timeout, cooldown).");
        }

        var management = new JsonObject();
        foreach (var m in value.EnumerateObject())
        {
            management[m.Name] = m.Name switch
            {
                "localOnly" => m.Value.ValueKind is JsonValueKind.True or JsonValueKind.False ? m.Value.GetBoolean() : throw Bad("management.localOnly must be true or false."),
                "cacheDuration" => Number(m.Value, "management.cacheDuration", allowZero: true),
                "timeout" or "cooldown" => Number(m.Value, "management." + m.Name, allowZero: false),
                _ => throw Bad($"management: '{EntityParser.Truncate(m.Name)}' is not a member (localOnly, cacheDuration, timeout, cooldown)."),
            };
        }

        return management;
    }

    private static void WriteInformation(Utf8JsonWriter w, IReadOnlyList<RegistrationInfo> information, LdContext context)
    {
        w.WriteStartArray("information");
        foreach (var info in information)
        {
            w.WriteStartObject();
            if (info.Entities is not null)
            {
                w.WriteStartArray("entities");
                foreach (var e in info.Entities)
                {
                    w.WriteStartObject();
                    if (e.Id is not null)
                    {
                        w.WriteString("id", e.Id);
                    }

                    if (e.IdPattern is not null)
                    {
                        w.WriteString("idPattern", e.IdPattern);
                    }

                    if (e.Types is [var single])
                    {
                        w.WriteString("type", context.CompactIri(single));
                    }
                    else
                    {
                        WriteNames(w, "type", e.Types, context);
                    }

                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            if (info.PropertyNames is not null)
            {
                WriteNames(w, "propertyNames", info.PropertyNames, context);
            }

            if (info.RelationshipNames is not null)
            {
                WriteNames(w, "relationshipNames", info.RelationshipNames, context);
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteNames(Utf8JsonWriter w, string member, IEnumerable<string> names, LdContext context)
    {
        w.WriteStartArray(member);
        foreach (var name in names)
        {
            w.WriteStringValue(context.CompactIri(name));
        }

        w.WriteEndArray();
    }

    private static bool IsCoreMember(string name) => name is "id" or "type" or "registrationName" or "description" or "refreshRate"
        or "tenant" or "observationInterval" or "managementInterval" or "location" or "observationSpace" or "operationSpace"
        or "expiresAt" or "endpoint" or "contextSourceInfo" or "scope" or "mode" or "operations" or "management";

    internal static bool IsTenant(string? tenant) =>
        !string.IsNullOrEmpty(tenant) && tenant.Length <= 64 && tenant.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    private static TimeSpan? Milliseconds(JsonNode? node) => node is null ? null : TimeSpan.FromMilliseconds(node.GetValue<double>());

    private static double Number(JsonElement value, string member, bool allowZero) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && (d > 0 || (allowZero && d == 0)) && d <= 86_400_000
            ? d
            : throw Bad($"{member} must be a number of milliseconds {(allowZero ? "≥ 0" : "> 0")} (at most a day).");

    private static string DateTime(JsonElement value, string member) =>
        NgsiText.CanonicalDateTime(Text(value) ?? string.Empty) ?? throw Bad($"{member} must be a date-time such as 2026-12-01T00:00:00Z.");

    internal static DateTimeOffset Instant(string canonical) => DateTimeOffset.Parse(canonical, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);

    private static string Name(JsonElement value, string member)
    {
        var name = Text(value);
        return NgsiText.IsName(name) ? name! : throw Bad($"{member}: '{EntityParser.Truncate(name ?? value.GetRawText())}' is not a valid name.");
    }

    private static string NonEmptyText(JsonElement value, string member) =>
        Text(value) is { Length: > 0 } text ? text : throw Bad($"{member} must be a non-empty string.");

    private static string? Text(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static NgsiException Bad(string detail) => NgsiException.BadData(detail);
}
