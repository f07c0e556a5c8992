using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// Reads and checks subscriptions (clause 5.2.12, NotificationParams 5.2.14, Endpoint 5.2.15) and writes them back.
/// Members are checked one by one when a body is read; the rules across members when the whole subscription is
/// built, so that an update is checked as the subscription it produces.
/// </summary>
internal static class SubscriptionParser
{
    public const string IdPrefix = "urn:ngsi-ld:Subscription:";
    public const string TypeName = "Subscription";

    /// <summary>Members the broker maintains; ignored when a client sends them back.</summary>
    private static readonly HashSet<string> ReadOnlyMembers = new(StringComparer.Ordinal)
    {
        "status", "createdAt", "modifiedAt", "@context",
    };

    private static readonly HashSet<string> ReadOnlyNotificationMembers = new(StringComparer.Ordinal)
    {
        "status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure",
    };

    private static readonly Dictionary<string, Triggers> TriggerNames = new(StringComparer.Ordinal)
    {
        ["entityCreated"] = Triggers.EntityCreated,
        ["entityUpdated"] = Triggers.EntityUpdated,
        ["entityDeleted"] = Triggers.EntityDeleted,
        ["attributeCreated"] = Triggers.AttributeCreated,
        ["attributeUpdated"] = Triggers.AttributeUpdated,
        ["attributeDeleted"] = Triggers.AttributeDeleted,
    };

    /// <summary>Reads a subscription body (or, with <paramref name="fragment"/>, the members an update changes).</summary>
    public static JsonObject ParseMembers(JsonElement body, LdContext context, bool fragment)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw Bad("A subscription must be a JSON object.");
        }

        var doc = new JsonObject();
        foreach (var member in body.EnumerateObject())
        {
            var value = member.Value;
            switch (member.Name)
            {
                case var readOnly when ReadOnlyMembers.Contains(readOnly):
                    break;
                case "id":
                    doc["id"] = NgsiText.IsUri(Text(value, "id")) ? value.GetString() : throw Bad("id must be a URI.");
                    break;
                case "type":
                    doc["type"] = Text(value, "type") == TypeName ? TypeName : throw Bad($"type must be \"{TypeName}\".");
                    break;
                case "subscriptionName" or "description" or "lang":
                    doc[member.Name] = Text(value, member.Name);
                    if (member.Name == "lang")
                    {
                        _ = LanguagePreference.Parse(value.GetString());
                    }

                    break;
                case "entities":
                    doc["entities"] = ParseEntities(value, context);
                    break;
                case "watchedAttributes":
                    doc["watchedAttributes"] = Names(value, "watchedAttributes");
                    break;
                case "notificationTrigger":
                    var triggers = Names(value, "notificationTrigger");
                    foreach (var trigger in triggers)
                    {
                        if (!TriggerNames.ContainsKey(trigger!.GetValue<string>()))
                        {
                            throw Bad($"notificationTrigger: '{EntityParser.Truncate(trigger.GetValue<string>())}' is not one of {string.Join(", ", TriggerNames.Keys)}.");
                        }
                    }

                    doc["notificationTrigger"] = triggers;
                    break;
                case "q":
                    _ = QParser.Parse(Text(value, "q"));
                    doc["q"] = value.GetString();
                    break;
                case "geoQ":
                    _ = GeoQuery.FromJson(value, context.ExpandTerm);
                    doc["geoQ"] = JsonNode.Parse(value.GetRawText());
                    break;
                case "scopeQ":
                    _ = ScopeQuery.Parse(Text(value, "scopeQ"));
                    doc["scopeQ"] = value.GetString();
                    break;
                case "timeInterval" or "throttling":
                    doc[member.Name] = value.ValueKind == JsonValueKind.Number && value.GetDouble() > 0
                        ? value.GetDouble()
                        : throw Bad($"{member.Name} must be a number of seconds greater than 0.");
                    break;
                case "expiresAt":
                    doc["expiresAt"] = NgsiText.TryParseDateTime(Text(value, "expiresAt"), out var expires)
                        ? NgsiText.FormatDateTime(expires)
                        : throw Bad("expiresAt must be an ISO 8601 date-time, e.g. 2030-01-01T00:00:00Z.");
                    break;
                case "isActive":
                    doc["isActive"] = value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : throw Bad("isActive must be true or false.");
                    break;
                case "jsonldContext":
                    doc["jsonldContext"] = NgsiText.IsUri(Text(value, "jsonldContext")) && Uri.TryCreate(value.GetString(), UriKind.Absolute, out _)
                        ? value.GetString()
                        : throw Bad("jsonldContext must be the absolute URI of a JSON-LD @context.");
                    break;
                case "notification":
                    doc["notification"] = ParseNotification(value, context);
                    break;
                case "temporalQ" or "csf":
                    throw new NgsiException(NgsiErrorType.OperationNotSupported, $"Subscription member '{member.Name}' is not supported by this broker.");
                default:
                    throw Bad($"'{EntityParser.Truncate(member.Name)}' is not a member of a Subscription.");
            }
        }

        if (!fragment && !doc.ContainsKey("type"))
        {
            throw Bad($"A subscription needs \"type\": \"{TypeName}\".");
        }

        if (fragment && (doc.ContainsKey("id") || doc.ContainsKey("type")) && doc.Count <= 2 && doc.All(m => m.Key is "id" or "type"))
        {
            throw Bad("The body names no member to update.");
        }

        return doc;
    }

    /// <summary>Builds a whole subscription document into the form matching uses, checking the rules across members.</summary>
    public static Subscription Build(string tenant, JsonObject doc, LdContext context, string contextUrl, DateTimeOffset createdAt, DateTimeOffset modifiedAt)
    {
        var id = doc["id"]?.GetValue<string>() ?? throw Bad("A subscription needs an id.");
        var entities = doc["entities"] as JsonArray;
        var watched = doc["watchedAttributes"] as JsonArray;
        var timeInterval = doc["timeInterval"]?.GetValue<double>();
        if (entities is null && watched is null)
        {
            throw Bad("A subscription needs entities, watchedAttributes or both.");
        }

        if (timeInterval is not null && (watched is not null || doc.ContainsKey("throttling") || doc.ContainsKey("notificationTrigger")))
        {
            throw Bad("timeInterval (periodic notifications) cannot be combined with watchedAttributes, throttling or notificationTrigger.");
        }

        var notificationDoc = doc["notification"] as JsonObject ?? throw Bad("A subscription needs notification with an endpoint.");
        var notification = BuildNotification(notificationDoc, context, doc["lang"]?.GetValue<string>());

        var triggers = Triggers.None;
        foreach (var name in (doc["notificationTrigger"] as JsonArray)?.Select(t => t!.GetValue<string>()) ?? ["attributeCreated", "attributeUpdated"])
        {
            triggers |= TriggerNames[name];
        }

        var expand = context.ExpandTerm;
        var selectors = entities?.Select(e =>
        {
            var selector = (JsonObject)e!;
            return new EntitySelector(
                selector["id"] is { } one ? [one.GetValue<string>()] : null,
                selector["idPattern"] is { } pattern ? EntitySelector.CompileIdPattern(pattern.GetValue<string>()) : null,
                selector["type"] is { } type ? TypeExpression.Parse(type.GetValue<string>()).Expand(expand) : null);
        }).ToList();

        var filter = new EntityFilter
        {
            Selectors = selectors,
            Q = doc["q"] is { } q ? QExpressions.Expand(QParser.Parse(q.GetValue<string>()), expand) : null,
            Geo = doc["geoQ"] is { } geo ? GeoQuery.FromJson(JsonSerializer.SerializeToElement(geo), expand) : null,
            Scope = doc["scopeQ"] is { } scope ? ScopeQuery.Parse(scope.GetValue<string>()) : null,
        };

        return new Subscription
        {
            Tenant = tenant,
            Id = id,
            Document = doc,
            Context = context,
            ContextUrl = doc["jsonldContext"]?.GetValue<string>() ?? contextUrl,
            Filter = filter,
            WatchedAttributes = watched?.Select(w => EntityParser.ExpandAttributeName(w!.GetValue<string>(), context)).ToHashSet(StringComparer.Ordinal),
            Triggers = triggers,
            Throttling = doc["throttling"] is { } throttling ? TimeSpan.FromSeconds(throttling.GetValue<double>()) : null,
            TimeInterval = timeInterval is { } interval ? TimeSpan.FromSeconds(interval) : null,
            ExpiresAt = doc["expiresAt"] is { } at ? DateTimeOffset.Parse(at.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal) : null,
            IsActive = doc["isActive"]?.GetValue<bool>() ?? true,
            Notification = notification,
            CreatedAt = createdAt,
            ModifiedAt = modifiedAt,
        };
    }

    /// <summary>
    /// Writes a subscription for a reader whose @context is <paramref name="context"/>: attribute and type names
    /// are expanded with the subscription's own context and compacted with the reader's.
    /// </summary>
    public static void Write(Utf8JsonWriter w, Subscription subscription, DeliveryCounters counters, LdContext context, DateTimeOffset now, bool sysAttrs, bool includeContext)
    {
        string Name(string name) => context.CompactIri(EntityParser.ExpandAttributeName(name, subscription.Context));

        w.WriteStartObject();
        foreach (var (name, value) in subscription.Document)
        {
            switch (name)
            {
                case "watchedAttributes":
                    w.WriteStartArray(name);
                    foreach (var item in (JsonArray)value!)
                    {
                        w.WriteStringValue(Name(item!.GetValue<string>()));
                    }

                    w.WriteEndArray();
                    break;
                case "entities":
                    w.WriteStartArray(name);
                    foreach (var item in (JsonArray)value!)
                    {
                        w.WriteStartObject();
                        foreach (var (member, memberValue) in (JsonObject)item!)
                        {
                            var text = memberValue!.GetValue<string>();
                            // A plain type name is re-compacted; an expression (with operators) is written as given.
                            w.WriteString(member, member == "type" && NgsiText.IsName(text) ? context.CompactIri(subscription.Context.ExpandTerm(text)) : text);
                        }

                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                    break;
                case "notification":
                    w.WriteStartObject(name);
                    foreach (var (member, memberValue) in (JsonObject)value!)
                    {
                        if (member == "attributes")
                        {
                            w.WriteStartArray(member);
                            foreach (var item in (JsonArray)memberValue!)
                            {
                                w.WriteStringValue(Name(item!.GetValue<string>()));
                            }

                            w.WriteEndArray();
                        }
                        else
                        {
                            w.WritePropertyName(member);
                            memberValue!.WriteTo(w);
                        }
                    }

                    w.WriteString("status", counters.Status);
                    w.WriteNumber("timesSent", counters.TimesSent);
                    w.WriteNumber("timesFailed", counters.TimesFailed);
                    WriteInstant(w, "lastNotification", counters.LastNotification);
                    WriteInstant(w, "lastSuccess", counters.LastSuccess);
                    WriteInstant(w, "lastFailure", counters.LastFailure);
                    w.WriteEndObject();
                    break;
                default:
                    w.WritePropertyName(name);
                    value!.WriteTo(w);
                    break;
            }
        }

        if (!subscription.Document.ContainsKey("jsonldContext"))
        {
            w.WriteString("jsonldContext", subscription.ContextUrl);
        }

        if (!subscription.Document.ContainsKey("isActive"))
        {
            w.WriteBoolean("isActive", subscription.IsActive);
        }

        w.WriteString("status", subscription.Status(now));
        if (sysAttrs)
        {
            w.WriteString("createdAt", NgsiText.FormatDateTime(subscription.CreatedAt));
            w.WriteString("modifiedAt", NgsiText.FormatDateTime(subscription.ModifiedAt));
        }

        if (includeContext)
        {
            EntityRenderer.WriteContext(w, context);
        }

        w.WriteEndObject();
    }

    private static void WriteInstant(Utf8JsonWriter w, string name, DateTimeOffset? value)
    {
        if (value is { } at)
        {
            w.WriteString(name, NgsiText.FormatDateTime(at));
        }
    }

    private static JsonArray ParseEntities(JsonElement value, LdContext context)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Bad("entities must be a non-empty array of EntitySelectors ({type, id, idPattern}).");
        }

        var list = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Bad("Every item of entities must be an object with type, and optionally id or idPattern.");
            }

            var selector = new JsonObject();
            foreach (var member in item.EnumerateObject())
            {
                switch (member.Name)
                {
                    case "id":
                        selector["id"] = NgsiText.IsUri(Text(member.Value, "entities[].id")) ? member.Value.GetString() : throw Bad("entities: id must be a URI.");
                        break;
                    case "idPattern":
                        _ = EntitySelector.CompileIdPattern(Text(member.Value, "entities[].idPattern"));
                        selector["idPattern"] = member.Value.GetString();
                        break;
                    case "type":
                        _ = TypeExpression.Parse(Text(member.Value, "entities[].type")).Expand(context.ExpandTerm);
                        selector["type"] = member.Value.GetString();
                        break;
                    default:
                        throw Bad($"entities: '{EntityParser.Truncate(member.Name)}' is not a member of an EntitySelector.");
                }
            }

            if (!selector.ContainsKey("type"))
            {
                throw Bad("Every item of entities needs a type (clause 5.2.33).");
            }

            if (selector.ContainsKey("id") && selector.ContainsKey("idPattern"))
            {
                throw Bad("An item of entities has id or idPattern, not both.");
            }

            list.Add(selector);
        }

        return list;
    }

    private static JsonObject ParseNotification(JsonElement value, LdContext context)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad("notification must be an object with an endpoint.");
        }

        var doc = new JsonObject();
        foreach (var member in value.EnumerateObject())
        {
            var item = member.Value;
            switch (member.Name)
            {
                case var readOnly when ReadOnlyNotificationMembers.Contains(readOnly):
                    break;
                case "attributes":
                    doc["attributes"] = Names(item, "notification.attributes");
                    break;
                case "format":
                    var format = Text(item, "notification.format");
                    doc["format"] = format is "normalized" or "concise" or "keyValues" or "simplified"
                        ? format
                        : throw Bad("notification.format must be normalized, concise, keyValues or simplified.");
                    break;
                case "showChanges" or "sysAttrs":
                    doc[member.Name] = item.ValueKind is JsonValueKind.True or JsonValueKind.False ? item.GetBoolean() : throw Bad($"notification.{member.Name} must be true or false.");
                    break;
                case "endpoint":
                    doc["endpoint"] = ParseEndpoint(item);
                    break;
                default:
                    throw Bad($"notification: '{EntityParser.Truncate(member.Name)}' is not a member of NotificationParams.");
            }
        }

        _ = context;
        return doc;
    }

    private static JsonObject ParseEndpoint(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad("notification.endpoint must be an object with a uri.");
        }

        var doc = new JsonObject();
        foreach (var member in value.EnumerateObject())
        {
            switch (member.Name)
            {
                case "uri":
                    var text = Text(member.Value, "notification.endpoint.uri");
                    doc["uri"] = Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" or "mqtt" or "mqtts"
                        ? text
                        : throw Bad("notification.endpoint.uri must be an absolute http, https, mqtt or mqtts URI.");
                    break;
                case "accept":
                    var accept = Text(member.Value, "notification.endpoint.accept");
                    doc["accept"] = accept is "application/json" or "application/ld+json"
                        ? accept
                        : throw Bad("notification.endpoint.accept must be application/json or application/ld+json.");
                    break;
                case "receiverInfo" or "notifierInfo":
                    doc[member.Name] = KeyValues(member.Value, "notification.endpoint." + member.Name);
                    break;
                case "timeout" or "cooldown":
                    doc[member.Name] = member.Value.ValueKind == JsonValueKind.Number && member.Value.GetDouble() > 0
                        ? member.Value.GetDouble()
                        : throw Bad($"notification.endpoint.{member.Name} must be a number of milliseconds greater than 0.");
                    break;
                default:
                    throw Bad($"notification.endpoint: '{EntityParser.Truncate(member.Name)}' is not a member of an Endpoint.");
            }
        }

        return doc.ContainsKey("uri") ? doc : throw Bad("notification.endpoint needs a uri.");
    }

    private static JsonArray KeyValues(JsonElement value, string name)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Bad($"{name} must be an array of {{\"key\": …, \"value\": …}}.");
        }

        var list = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("key", out var key) || !item.TryGetProperty("value", out var text)
                || key.ValueKind != JsonValueKind.String || text.ValueKind != JsonValueKind.String || key.GetString() is not { Length: > 0 } k
                || !k.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || text.GetString()!.Any(char.IsControl))
            {
                throw Bad($"{name}: every item must be {{\"key\": a header-safe name, \"value\": a string}}.");
            }

            list.Add(new JsonObject { ["key"] = k, ["value"] = text.GetString() });
        }

        return list;
    }

    private static NotificationSettings BuildNotification(JsonObject doc, LdContext context, string? lang)
    {
        var endpoint = doc["endpoint"] as JsonObject ?? throw Bad("notification needs an endpoint with a uri.");
        var format = doc["format"]?.GetValue<string>() switch
        {
            "keyValues" or "simplified" => Representation.KeyValues,
            "concise" => Representation.Concise,
            _ => Representation.Normalized,
        };
        var showChanges = doc["showChanges"]?.GetValue<bool>() ?? false;
        if (showChanges && format == Representation.KeyValues)
        {
            throw Bad("notification.showChanges cannot be true with format keyValues.");
        }

        var uri = new Uri(endpoint["uri"]!.GetValue<string>());
        var notifierInfo = Pairs(endpoint["notifierInfo"]);
        if (MqttEndpoint.IsMqtt(uri) && !MqttEndpoint.TryParse(uri, notifierInfo, out _, out var mqttError))
        {
            throw Bad("notification.endpoint: " + mqttError);
        }

        return new NotificationSettings
        {
            Attributes = (doc["attributes"] as JsonArray)?.Select(a => EntityParser.ExpandAttributeName(a!.GetValue<string>(), context)).ToHashSet(StringComparer.Ordinal),
            Format = format,
            ShowChanges = showChanges,
            SysAttrs = doc["sysAttrs"]?.GetValue<bool>() ?? false,
            Endpoint = uri,
            Accept = endpoint["accept"]?.GetValue<string>() ?? "application/json",
            ReceiverInfo = Pairs(endpoint["receiverInfo"]),
            NotifierInfo = notifierInfo,
            Lang = LanguagePreference.Parse(lang),
        };
    }

    private static List<KeyValuePair<string, string>> Pairs(JsonNode? list) =>
        (list as JsonArray)?.Select(i => new KeyValuePair<string, string>(i!["key"]!.GetValue<string>(), i["value"]!.GetValue<string>())).ToList() ?? [];

    private static JsonArray Names(JsonElement value, string name)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Bad($"{name} must be a non-empty array of names.");
        }

        var list = new JsonArray();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || !(NgsiText.IsName(item.GetString()) || NgsiText.IsUri(item.GetString())))
            {
                throw Bad($"{name} must be a non-empty array of names.");
            }

            list.Add(item.GetString());
        }

        return list;
    }

    private static string Text(JsonElement value, string name) =>
        value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text ? text : throw Bad($"{name} must be a non-empty string.");

    private static NgsiException Bad(string detail) => NgsiException.BadData(detail);
}
