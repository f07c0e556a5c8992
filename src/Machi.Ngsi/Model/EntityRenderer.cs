using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Model;

/// <summary>The three representations of clause 4.5: lossless normalized, concise, and keyValues (simplified).</summary>
public enum Representation
{
    Normalized,
    Concise,
    KeyValues,
}

/// <summary>How to render entities for one request.</summary>
public sealed record RenderOptions(LdContext Context)
{
    public Representation Format { get; init; } = Representation.Normalized;

    /// <summary>Include createdAt/modifiedAt (options=sysAttrs).</summary>
    public bool SysAttrs { get; init; }

    /// <summary>Expanded names of the attributes to return; null returns all.</summary>
    public IReadOnlySet<string>? Attrs { get; init; }

    /// <summary>Language preference (lang=) for LanguageProperty; null returns the whole languageMap.</summary>
    public LanguagePreference? Lang { get; init; }

    /// <summary>Write "@context" into each entity (application/ld+json).</summary>
    public bool IncludeContext { get; init; }

    /// <summary>Render as GeoJSON Features (application/geo+json) using this expanded GeoProperty name.</summary>
    public string? GeometryProperty { get; init; }

    /// <summary>
    /// pick= (clause 4.21): the only members to return: expanded attribute names and the core members "id", "type",
    /// "scope", "createdAt", "modifiedAt" as they are (see <see cref="Projection.Parse"/>). Null returns all.
    /// </summary>
    public IReadOnlySet<string>? Pick { get; init; }

    /// <summary>omit= (clause 4.21): members not to return, named as in <see cref="Pick"/>.</summary>
    public IReadOnlySet<string>? Omit { get; init; }

    /// <summary>
    /// datasetId= (clause 4.5.5): the only attribute instances to return, by datasetId; "@none" names the default
    /// instance. An attribute with none of them is left out. Null returns every instance.
    /// </summary>
    public IReadOnlySet<string>? DatasetIds { get; init; }

    /// <summary>join=inline (clause 4.5.23): the Linked Entities to write into the Relationships that name them.</summary>
    public InlineJoin? Inline { get; init; }

    /// <summary>Whether an instance of the attribute (expanded name) is written: attrs, pick/omit and datasetId let it through.</summary>
    public bool ShowsInstance(string name, AttributeInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return (Attrs is null || Attrs.Contains(name)) && Shows(name) && (DatasetIds is null || DatasetIds.Contains(instance.DatasetId ?? "@none"));
    }

    /// <summary>Whether pick/omit let a member (core member keyword or expanded attribute name) through.</summary>
    internal bool Shows(string member) =>
        (Pick is null || Pick.Contains(member)) && (Omit is null || !Omit.Contains(member));
}

/// <summary>Renders the model as NGSI-LD JSON, compacting names with the request's @context.</summary>
public static class EntityRenderer
{
    /// <summary>Writer settings for every NGSI-LD response: text as UTF-8, not \u escapes (Japanese stays readable).</summary>
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        SkipValidation = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static void WriteEntity(Utf8JsonWriter w, Entity entity, RenderOptions options)
    {
        if (options.Inline is { } inline)
        {
            // Each entity of a response is the root of its own traversal.
            options = options with { Inline = inline.Root(entity.Id) };
        }

        if (options.GeometryProperty is not null)
        {
            WriteFeature(w, entity, options);
            return;
        }

        w.WriteStartObject();
        if (options.Shows(Projection.Id))
        {
            w.WriteString("id", entity.Id);
        }

        if (options.Shows(Projection.Type))
        {
            WriteTypes(w, "type", entity.Types, options.Context);
        }

        WriteBody(w, entity, options);
        if (options.IncludeContext)
        {
            WriteContext(w, options.Context);
        }

        w.WriteEndObject();
    }

    /// <summary>GeoJSON Feature (clause 4.5.16): id, geometry from the chosen GeoProperty, properties holding the rest.</summary>
    private static void WriteFeature(Utf8JsonWriter w, Entity entity, RenderOptions options)
    {
        w.WriteStartObject();
        if (options.Shows(Projection.Id))
        {
            w.WriteString("id", entity.Id);
        }

        w.WriteString("type", "Feature");
        w.WritePropertyName("geometry");
        var geo = entity.Attributes.Find(options.GeometryProperty!, null)
            ?? (entity.Attributes.TryGetValue(options.GeometryProperty!, out var all) ? all[0] : null);
        if (geo is { Kind: AttributeKind.GeoProperty })
        {
            geo.WritePayload(w);
        }
        else
        {
            w.WriteNullValue();
        }

        w.WriteStartObject("properties");
        if (options.Shows(Projection.Type))
        {
            WriteTypes(w, "type", entity.Types, options.Context);
        }

        WriteBody(w, entity, options);
        w.WriteEndObject();
        if (options.IncludeContext)
        {
            WriteContext(w, options.Context);
        }

        w.WriteEndObject();
    }

    public static void WriteContext(Utf8JsonWriter w, LdContext context)
    {
        w.WritePropertyName("@context");
        if (context.ValueJson is { } json)
        {
            w.WriteRawValue(json, skipInputValidation: true);
        }
        else
        {
            w.WriteStringValue(LdContext.CoreContextUrl);
        }
    }

    private static void WriteBody(Utf8JsonWriter w, Entity entity, RenderOptions options)
    {
        var keyValues = options.Format == Representation.KeyValues;
        if (entity.Scope is { } scope && options.Shows(Projection.Scope))
        {
            WriteStrings(w, "scope", scope);
        }

        if (options.SysAttrs && !keyValues)
        {
            if (options.Shows(Projection.CreatedAt))
            {
                w.WriteString("createdAt", NgsiText.FormatDateTime(entity.CreatedAt));
            }

            if (options.Shows(Projection.ModifiedAt))
            {
                w.WriteString("modifiedAt", NgsiText.FormatDateTime(entity.ModifiedAt));
            }
        }

        foreach (var (name, instances) in entity.Attributes)
        {
            if ((options.Attrs is { } wanted && !wanted.Contains(name)) || !options.Shows(name))
            {
                continue;
            }

            var shown = options.DatasetIds is { } datasets ? instances.FindAll(i => datasets.Contains(i.DatasetId ?? "@none")) : instances;
            if (shown.Count == 0)
            {
                continue;
            }

            w.WritePropertyName(options.Context.CompactIri(name));
            WriteInstances(w, shown, options);
        }
    }

    private static void WriteInstances(Utf8JsonWriter w, List<AttributeInstance> instances, RenderOptions options)
    {
        if (instances.Count == 1)
        {
            WriteInstance(w, instances[0], options);
            return;
        }

        w.WriteStartArray();
        foreach (var a in instances)
        {
            WriteInstance(w, a, options);
        }

        w.WriteEndArray();
    }

    /// <summary>One attribute instance; <paramref name="extra"/> adds members to its object (the temporal API's instanceId).</summary>
    internal static void WriteInstance(Utf8JsonWriter w, AttributeInstance a, RenderOptions options, Action<Utf8JsonWriter>? extra = null)
    {
        var ctx = options.Context;
        var languageValue = a.Kind == AttributeKind.LanguageProperty && options.Lang is { } lang
            ? lang.Select((JsonObject)a.Payload)
            : null;
        var linked = options.Inline?.Linked(a);
        if (options.Format == Representation.KeyValues)
        {
            if (languageValue is { } chosen)
            {
                w.WriteStringValue(chosen.Text);
            }
            else if (linked is not null)
            {
                // Simplified: the Linked Entity stands in place of the identifier it carries.
                WriteLinked(w, a, linked, options);
            }
            else
            {
                WritePayload(w, a, ctx);
            }

            return;
        }

        var concise = options.Format == Representation.Concise;
        var hasMeta = a.DatasetId is not null || a.ObservedAt is not null || a.UnitCode is not null
            || a.ObjectType is not null || a.ValueType is not null || a.Sub is { Count: > 0 } || options.SysAttrs;

        // Concise (clause 4.5.9): a Property or GeoProperty with nothing but its value is written as the bare value.
        if (concise && !hasMeta && languageValue is null && a.Kind is AttributeKind.Property or AttributeKind.GeoProperty
            && !(a.Kind == AttributeKind.Property && a.HasObjectPayload && LooksLikeAttribute((JsonObject)a.Payload)))
        {
            a.WritePayload(w);
            return;
        }

        w.WriteStartObject();
        if (!concise)
        {
            w.WriteString("type", languageValue is null ? AttributeKinds.Name(a.Kind) : "Property");
        }

        if (languageValue is { } selected)
        {
            w.WriteString("value", selected.Text);
            w.WriteString("lang", selected.Tag);
        }
        else
        {
            w.WritePropertyName(AttributeKinds.PayloadMember(a.Kind));
            WritePayload(w, a, ctx);
        }

        if (a.ObjectType is { } objectType)
        {
            w.WritePropertyName("objectType");
            WriteCompacted(w, objectType, ctx);
        }

        if (a.ValueType is not null) w.WriteString("valueType", ctx.CompactIri(a.ValueType));
        if (a.DatasetId is not null) w.WriteString("datasetId", a.DatasetId);
        if (a.ObservedAt is not null) w.WriteString("observedAt", a.ObservedAt);
        if (a.UnitCode is not null) w.WriteString("unitCode", a.UnitCode);
        if (options.SysAttrs)
        {
            w.WriteString("createdAt", NgsiText.FormatDateTime(a.CreatedAt));
            w.WriteString("modifiedAt", NgsiText.FormatDateTime(a.ModifiedAt));
        }

        if (a.Sub is { } sub)
        {
            foreach (var (name, instances) in sub)
            {
                w.WritePropertyName(ctx.CompactIri(name));
                WriteInstances(w, instances, options with { Attrs = null, Pick = null, Omit = null, DatasetIds = null, Inline = null });
            }
        }

        if (linked is not null)
        {
            w.WritePropertyName(a.Kind == AttributeKind.ListRelationship ? "entityList" : "entity");
            WriteLinked(w, a, linked, options);
        }

        extra?.Invoke(w);
        w.WriteEndObject();
    }

    /// <summary>
    /// The Linked Entities of a Relationship, in the shape of its object: one entity for one object, an array for a
    /// ListRelationship or a Relationship with several objects (objects whose entity is not at hand are left out).
    /// </summary>
    private static void WriteLinked(Utf8JsonWriter w, AttributeInstance a, IReadOnlyList<(Entity Entity, InlineJoin Next)> linked, RenderOptions options)
    {
        var inner = options with { Attrs = null, Pick = null, Omit = null, DatasetIds = null, IncludeContext = false, GeometryProperty = null };
        if (linked.Count == 1 && a.Kind == AttributeKind.Relationship && a.Payload is JsonValue)
        {
            WriteLinkedEntity(w, linked[0], inner);
            return;
        }

        w.WriteStartArray();
        foreach (var one in linked)
        {
            WriteLinkedEntity(w, one, inner);
        }

        w.WriteEndArray();
    }

    private static void WriteLinkedEntity(Utf8JsonWriter w, (Entity Entity, InlineJoin Next) linked, RenderOptions options)
    {
        var inner = options with { Inline = linked.Next };
        w.WriteStartObject();
        w.WriteString("id", linked.Entity.Id);
        WriteTypes(w, "type", linked.Entity.Types, inner.Context);
        WriteBody(w, linked.Entity, inner);
        w.WriteEndObject();
    }

    /// <summary>Whether a Property's object value would read back as an attribute if written bare in concise form.</summary>
    private static bool LooksLikeAttribute(JsonObject o) =>
        AttributeKinds.ByPayloadMember.Any(p => o.ContainsKey(p.Member))
        || (o["type"] is JsonValue t && t.TryGetValue<string>(out var s) && AttributeKinds.TryParse(s, out _));

    internal static void WritePayload(Utf8JsonWriter w, AttributeInstance a, LdContext ctx)
    {
        if (a.Kind == AttributeKind.VocabProperty)
        {
            WriteCompacted(w, a.Payload, ctx);
            return;
        }

        a.WritePayload(w);
    }

    private static void WriteCompacted(Utf8JsonWriter w, JsonNode node, LdContext ctx)
    {
        if (node is JsonArray array)
        {
            w.WriteStartArray();
            foreach (var item in array)
            {
                w.WriteStringValue(ctx.CompactIri(item!.GetValue<string>()));
            }

            w.WriteEndArray();
            return;
        }

        w.WriteStringValue(ctx.CompactIri(node.GetValue<string>()));
    }

    internal static void WriteTypes(Utf8JsonWriter w, string member, List<string> types, LdContext ctx)
    {
        if (types.Count == 1)
        {
            w.WriteString(member, ctx.CompactIri(types[0]));
            return;
        }

        w.WriteStartArray(member);
        foreach (var t in types)
        {
            w.WriteStringValue(ctx.CompactIri(t));
        }

        w.WriteEndArray();
    }

    private static void WriteStrings(Utf8JsonWriter w, string member, List<string> values)
    {
        if (values.Count == 1)
        {
            w.WriteString(member, values[0]);
            return;
        }

        w.WriteStartArray(member);
        foreach (var v in values)
        {
            w.WriteStringValue(v);
        }

        w.WriteEndArray();
    }
}

/// <summary>The lang= parameter (clause 4.15): language tags in order of preference; "*" means all.</summary>
public sealed class LanguagePreference
{
    private readonly string[] _tags;

    private LanguagePreference(string[] tags) => _tags = tags;

    /// <summary>Parses "ja,en;q=0.8,*;q=0.1"; null for "*" alone (the whole map is returned).</summary>
    public static LanguagePreference? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var ranked = new List<(string Tag, double Q, int Order)>();
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            var pieces = parts[i].Split(';', StringSplitOptions.TrimEntries);
            var q = 1.0;
            if (pieces.Length > 1 && pieces[1].StartsWith("q=", StringComparison.Ordinal)
                && !double.TryParse(pieces[1].AsSpan(2), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out q))
            {
                throw Errors.NgsiException.BadData($"lang: '{parts[i]}' has an invalid q value.");
            }

            ranked.Add((pieces[0], q, i));
        }

        var tags = ranked.OrderByDescending(r => r.Q).ThenBy(r => r.Order).Select(r => r.Tag).ToArray();
        return tags is ["*"] ? null : new LanguagePreference(tags);
    }

    /// <summary>The best string of a languageMap: the first preferred tag present (prefix match), then @none, then any.</summary>
    public (string Tag, string Text)? Select(JsonObject languageMap)
    {
        foreach (var tag in _tags)
        {
            if (tag == "*")
            {
                break;
            }

            foreach (var (key, value) in languageMap)
            {
                if (key.Equals(tag, StringComparison.OrdinalIgnoreCase)
                    || (key.StartsWith(tag, StringComparison.OrdinalIgnoreCase) && key.Length > tag.Length && key[tag.Length] == '-'))
                {
                    return (key, TextOf(value));
                }
            }
        }

        if (languageMap["@none"] is { } none)
        {
            return ("@none", TextOf(none));
        }

        foreach (var (key, value) in languageMap)
        {
            return (key, TextOf(value));
        }

        return null;
    }

    private static string TextOf(JsonNode? node) => node switch
    {
        JsonArray a when a.Count > 0 => a[0]!.GetValue<string>(),
        JsonValue v => v.GetValue<string>(),
        _ => string.Empty,
    };
}
