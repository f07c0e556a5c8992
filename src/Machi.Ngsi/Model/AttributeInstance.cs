using System.Text.Json.Nodes;

namespace Machi.Ngsi.Model;

/// <summary>The NGSI-LD attribute types (clause 4.5): what member carries the payload and how it renders.</summary>
public enum AttributeKind
{
    Property,
    Relationship,
    GeoProperty,
    LanguageProperty,
    VocabProperty,
    JsonProperty,
    ListProperty,
    ListRelationship,
}

/// <summary>
/// One instance of an attribute (one datasetId). Names of sub-attributes, vocab values and objectType are
/// held expanded (full IRIs), so the stored form does not depend on any client's @context.
/// </summary>
public sealed class AttributeInstance
{
    private JsonNode? _payload;

    // The payload as stored (UTF-8 JSON), kept unparsed until something needs the tree: most reads only copy it
    // to the response, so they never build one.
    private byte[]? _rawPayload;

    public AttributeInstance(AttributeKind kind, JsonNode payload)
    {
        Kind = kind;
        _payload = payload;
    }

    private AttributeInstance(AttributeKind kind, byte[] rawPayload)
    {
        Kind = kind;
        _rawPayload = rawPayload;
    }

    public AttributeKind Kind { get; set; }

    /// <summary>The member named by <see cref="AttributeKinds.PayloadMember"/>: value, object, languageMap, vocab, json, valueList or objectList.</summary>
    public JsonNode Payload
    {
        get => _payload ??= JsonNode.Parse(_rawPayload!)!;
        set
        {
            _payload = value;
            _rawPayload = null;
        }
    }

    /// <summary>True when the payload is the merge-patch deletion marker "urn:ngsi-ld:null".</summary>
    public bool IsNullMarker
    {
        get
        {
            if (_payload is not null || _rawPayload is null)
            {
                return _payload is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String && v.GetValue<string>() == NgsiText.NullUri;
            }

            var reader = new System.Text.Json.Utf8JsonReader(_rawPayload);
            return reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.String && reader.ValueTextEquals(NgsiText.NullUri);
        }
    }

    /// <summary>Takes another instance's payload as it is held (stored bytes stay unparsed).</summary>
    public void TakePayload(AttributeInstance other)
    {
        _payload = other._payload;
        _rawPayload = other._rawPayload;
    }

    /// <summary>True when the payload is a JSON object (checked without parsing it).</summary>
    public bool HasObjectPayload => _payload is null ? _rawPayload is [(byte)'{', ..] : _payload is JsonObject;

    public string? DatasetId { get; set; }

    /// <summary>UTC, normalised ISO 8601 text.</summary>
    public string? ObservedAt { get; set; }

    public string? UnitCode { get; set; }

    /// <summary>Relationship/ListRelationship objectType: expanded type IRI(s), a string or an array.</summary>
    public JsonNode? ObjectType { get; set; }

    /// <summary>ListProperty/ListRelationship valueType, expanded.</summary>
    public string? ValueType { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ModifiedAt { get; set; }

    /// <summary>Sub-attributes by expanded name; each a list of instances (usually one).</summary>
    public AttributeMap? Sub { get; set; }

    /// <summary>An instance whose payload is the given stored JSON, parsed only on demand.</summary>
    public static AttributeInstance FromStored(AttributeKind kind, byte[] rawPayload) => new(kind, rawPayload);

    /// <summary>Replaces the payload with stored JSON, parsed only on demand.</summary>
    public void SetStoredPayload(byte[] rawPayload)
    {
        _rawPayload = rawPayload;
        _payload = null;
    }

    /// <summary>The payload as UTF-8 JSON: the stored bytes as they are, or the tree serialised.</summary>
    public ReadOnlySpan<byte> PayloadUtf8
    {
        get
        {
            if (_payload is null && _rawPayload is not null)
            {
                return _rawPayload;
            }

            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
            {
                Payload.WriteTo(writer);
            }

            return buffer.WrittenSpan;
        }
    }

    /// <summary>Writes the payload, copying the stored bytes when the tree was never built.</summary>
    public void WritePayload(System.Text.Json.Utf8JsonWriter writer)
    {
        if (_payload is null && _rawPayload is not null)
        {
            writer.WriteRawValue(_rawPayload, skipInputValidation: true);
        }
        else
        {
            Payload.WriteTo(writer);
        }
    }

    public AttributeInstance Clone()
    {
        var copy = (AttributeInstance)MemberwiseClone();
        copy._payload = _payload?.DeepClone();
        copy.ObjectType = ObjectType?.DeepClone();
        copy.Sub = Sub?.Clone();
        return copy;
    }
}

/// <summary>Attributes by expanded name, in insertion order; each name holds one instance per datasetId.</summary>
public sealed class AttributeMap : OrderedDictionaryOfLists
{
    public AttributeMap() { }

    /// <param name="capacity">How many attributes the map will hold (it grows beyond).</param>
    public AttributeMap(int capacity) : base(capacity) { }

    public AttributeMap Clone()
    {
        var copy = new AttributeMap();
        foreach (var (name, instances) in this)
        {
            copy[name] = instances.ConvertAll(a => a.Clone());
        }

        return copy;
    }

    /// <summary>The instance with the given datasetId (null: the default instance), if any.</summary>
    public AttributeInstance? Find(string name, string? datasetId)
    {
        if (!TryGetValue(name, out var instances))
        {
            return null;
        }

        foreach (var instance in instances)
        {
            if (instance.DatasetId == datasetId)
            {
                return instance;
            }
        }

        return null;
    }

    /// <summary>Adds or replaces the instance with the same datasetId; returns the replaced one.</summary>
    public AttributeInstance? Put(string name, AttributeInstance attribute)
    {
        if (!TryGetValue(name, out var instances))
        {
            this[name] = [attribute];
            return null;
        }

        for (var i = 0; i < instances.Count; i++)
        {
            if (instances[i].DatasetId == attribute.DatasetId)
            {
                var old = instances[i];
                instances[i] = attribute;
                return old;
            }
        }

        instances.Add(attribute);
        return null;
    }

    /// <summary>Removes one instance (or all with <paramref name="all"/>); false when nothing matched.</summary>
    public bool RemoveInstance(string name, string? datasetId, bool all)
    {
        if (!TryGetValue(name, out var instances))
        {
            return false;
        }

        if (all)
        {
            return Remove(name);
        }

        var removed = instances.RemoveAll(a => a.DatasetId == datasetId) > 0;
        if (instances.Count == 0)
        {
            Remove(name);
        }

        return removed;
    }
}

/// <summary>Insertion-ordered map from names to attribute instance lists.</summary>
public class OrderedDictionaryOfLists : System.Collections.Generic.OrderedDictionary<string, List<AttributeInstance>>
{
    public OrderedDictionaryOfLists() : base(StringComparer.Ordinal) { }

    public OrderedDictionaryOfLists(int capacity) : base(capacity, StringComparer.Ordinal) { }
}

public static class AttributeKinds
{
    /// <summary>
    /// The payload members and the kind each one implies for a concise attribute without "type" (clause 4.5.9),
    /// in the order they are tried; "value" (Property) comes last.
    /// </summary>
    public static readonly IReadOnlyList<(string Member, AttributeKind Kind)> ByPayloadMember =
    [
        ("object", AttributeKind.Relationship),
        ("objectList", AttributeKind.ListRelationship),
        ("languageMap", AttributeKind.LanguageProperty),
        ("vocab", AttributeKind.VocabProperty),
        ("json", AttributeKind.JsonProperty),
        ("valueList", AttributeKind.ListProperty),
        ("value", AttributeKind.Property),
    ];

    /// <summary>The JSON member holding the payload of an attribute of this kind.</summary>
    public static string PayloadMember(AttributeKind kind) => kind switch
    {
        AttributeKind.Relationship => "object",
        AttributeKind.LanguageProperty => "languageMap",
        AttributeKind.VocabProperty => "vocab",
        AttributeKind.JsonProperty => "json",
        AttributeKind.ListProperty => "valueList",
        AttributeKind.ListRelationship => "objectList",
        _ => "value",
    };

    public static bool TryParse(string type, out AttributeKind kind)
    {
        switch (type)
        {
            case "Property": kind = AttributeKind.Property; return true;
            case "Relationship": kind = AttributeKind.Relationship; return true;
            case "GeoProperty": kind = AttributeKind.GeoProperty; return true;
            case "LanguageProperty": kind = AttributeKind.LanguageProperty; return true;
            case "VocabProperty": kind = AttributeKind.VocabProperty; return true;
            case "JsonProperty": kind = AttributeKind.JsonProperty; return true;
            case "ListProperty": kind = AttributeKind.ListProperty; return true;
            case "ListRelationship": kind = AttributeKind.ListRelationship; return true;
            default: kind = default; return false;
        }
    }

    public static string Name(AttributeKind kind) => kind switch
    {
        AttributeKind.Property => "Property",
        AttributeKind.Relationship => "Relationship",
        AttributeKind.GeoProperty => "GeoProperty",
        AttributeKind.LanguageProperty => "LanguageProperty",
        AttributeKind.VocabProperty => "VocabProperty",
        AttributeKind.JsonProperty => "JsonProperty",
        AttributeKind.ListProperty => "ListProperty",
        _ => "ListRelationship",
    };
}
