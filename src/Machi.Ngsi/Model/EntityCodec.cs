using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Machi.Ngsi.Model;

/// <summary>
/// The stored form of an entity: compact JSON with expanded names, independent of any @context.
/// Short member names and integer timestamps keep rows small; the layout is versioned by the "v" member.
/// </summary>
public static class EntityCodec
{
    private const int Version = 1;

    // Encoding runs on the store's writer thread for every write: reuse one buffer and writer per thread.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    public static byte[] Encode(Entity entity)
    {
        var buffer = Buffer();
        var w = Start(buffer, entity.Id);
        w.WriteStartArray("type");
        foreach (var t in entity.Types)
        {
            w.WriteStringValue(t);
        }

        w.WriteEndArray();
        if (entity.Scope is { } scope)
        {
            w.WriteStartArray("scope");
            foreach (var s in scope)
            {
                w.WriteStringValue(s);
            }

            w.WriteEndArray();
        }

        w.WriteNumber("c", Ticks(entity.CreatedAt));
        w.WriteNumber("m", Ticks(entity.ModifiedAt));
        w.WritePropertyName("attrs");
        WriteMap(w, entity.Attributes);
        w.WriteEndObject();
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes one attribute instance to <paramref name="output"/> inside a nameless carrier: what <see cref="Decode"/>
    /// reads back as an entity with id "" whose only attribute "" holds the instance (the temporal history stores
    /// instances so). The carrier's members that would hold their defaults (no types, no timestamps) are left out.
    /// </summary>
    public static void EncodeInstance(AttributeInstance instance, IBufferWriter<byte> output)
    {
        var w = Start(output, string.Empty);
        w.WritePropertyName("attrs");
        w.WriteStartObject();
        w.WriteStartArray(string.Empty);
        WriteInstance(w, instance);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
        w.Flush();
    }

    /// <summary>One instance as <see cref="EncodeInstance(AttributeInstance, IBufferWriter{byte})"/> writes it, as an array.</summary>
    public static byte[] EncodeInstance(AttributeInstance instance)
    {
        var buffer = Buffer();
        EncodeInstance(instance, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>This thread's buffer, emptied.</summary>
    private static ArrayBufferWriter<byte> Buffer()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        return buffer;
    }

    /// <summary>This thread's writer on <paramref name="output"/>, the document started: its version and id written.</summary>
    private static Utf8JsonWriter Start(IBufferWriter<byte> output, string id)
    {
        var w = t_writer ??= new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true });
        w.Reset(output);
        w.WriteStartObject();
        w.WriteNumber("v", Version);
        w.WriteString("id", id);
        return w;
    }

    private static void WriteMap(Utf8JsonWriter w, AttributeMap map)
    {
        w.WriteStartObject();
        foreach (var (name, instances) in map)
        {
            w.WriteStartArray(name);
            foreach (var a in instances)
            {
                WriteInstance(w, a);
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
    }

    private static void WriteInstance(Utf8JsonWriter w, AttributeInstance a)
    {
        w.WriteStartObject();
        w.WriteString("k", AttributeKinds.Name(a.Kind));
        w.WritePropertyName("p");
        a.WritePayload(w);
        if (a.DatasetId is not null) w.WriteString("ds", a.DatasetId);
        if (a.ObservedAt is not null) w.WriteString("oa", a.ObservedAt);
        if (a.UnitCode is not null) w.WriteString("uc", a.UnitCode);
        if (a.ValueType is not null) w.WriteString("vt", a.ValueType);
        if (a.ObjectType is not null)
        {
            w.WritePropertyName("ot");
            a.ObjectType.WriteTo(w);
        }

        w.WriteNumber("c", Ticks(a.CreatedAt));
        w.WriteNumber("m", Ticks(a.ModifiedAt));
        if (a.Sub is { Count: > 0 })
        {
            w.WritePropertyName("sub");
            WriteMap(w, a.Sub);
        }

        w.WriteEndObject();
    }

    public static Entity Decode(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8);
        reader.Read(); // {
        string? id = null;
        var types = new List<string>(1);
        List<string>? scope = null;
        DateTimeOffset created = default, modified = default;
        AttributeMap? attrs = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var member = Member(ref reader);
            reader.Read();
            switch (member)
            {
                case "id": id = reader.GetString(); break;
                case "type": types = ReadStrings(ref reader); break;
                case "scope": scope = ReadStrings(ref reader); break;
                case "c": created = Instant(reader.GetInt64()); break;
                case "m": modified = Instant(reader.GetInt64()); break;
                case "attrs": attrs = ReadMap(ref reader, utf8); break;
                default: reader.Skip(); break;
            }
        }

        return new Entity(id ?? throw new InvalidDataException("Stored entity without id."), types)
        {
            Scope = scope,
            CreatedAt = created,
            ModifiedAt = modified,
            Attributes = attrs ?? new AttributeMap(),
        };
    }

    private static List<string> ReadStrings(ref Utf8JsonReader reader)
    {
        var list = new List<string>(1);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            list.Add(Name(ref reader));
        }

        return list;
    }

    private static AttributeMap ReadMap(ref Utf8JsonReader reader, ReadOnlySpan<byte> utf8)
    {
        var map = new AttributeMap();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = Name(ref reader);
            reader.Read(); // [
            var instances = new List<AttributeInstance>(1);
            while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                instances.Add(ReadInstance(ref reader, utf8));
            }

            map[name] = instances;
        }

        return map;
    }

    private static AttributeInstance ReadInstance(ref Utf8JsonReader reader, ReadOnlySpan<byte> utf8)
    {
        var a = AttributeInstance.FromStored(AttributeKind.Property, []);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var member = Member(ref reader);
            reader.Read();
            switch (member)
            {
                case "k":
                    a.Kind = AttributeKinds.TryParse(Name(ref reader), out var kind)
                        ? kind
                        : throw new InvalidDataException("Stored attribute of unknown kind.");
                    break;
                case "p":
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    a.SetStoredPayload(utf8[start..(int)reader.BytesConsumed].ToArray());
                    break;
                case "ds": a.DatasetId = reader.GetString(); break;
                case "oa": a.ObservedAt = reader.GetString(); break;
                case "uc": a.UnitCode = reader.GetString(); break;
                case "vt": a.ValueType = reader.GetString(); break;
                case "ot": a.ObjectType = JsonNode.Parse(ref reader); break;
                case "c": a.CreatedAt = Instant(reader.GetInt64()); break;
                case "m": a.ModifiedAt = Instant(reader.GetInt64()); break;
                case "sub": a.Sub = ReadMap(ref reader, utf8); break;
                default: reader.Skip(); break;
            }
        }

        return a;
    }

    private static readonly (byte[] Utf8, string Name)[] Members =
        [.. new[] { "k", "p", "c", "m", "oa", "uc", "ds", "vt", "ot", "sub", "id", "type", "scope", "attrs", "v" }
            .Select(n => (System.Text.Encoding.UTF8.GetBytes(n), n))];

    /// <summary>The member name as one of the codec's own constants (no allocation); null for others.</summary>
    private static string? Member(ref Utf8JsonReader reader)
    {
        foreach (var (utf8, name) in Members)
        {
            if (reader.ValueTextEquals(utf8))
            {
                return name;
            }
        }

        return null;
    }

    // Attribute names, types and kinds repeat across every stored entity: decode each once and share the string.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> InternedNames = new(StringComparer.Ordinal);
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> InternedLookup =
        InternedNames.GetAlternateLookup<ReadOnlySpan<char>>();

    private const int MaxInternedNames = 100_000;

    private static string Name(ref Utf8JsonReader reader)
    {
        if (reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > 512)
        {
            return reader.GetString()!;
        }

        Span<char> chars = stackalloc char[512];
        var length = System.Text.Encoding.UTF8.GetChars(reader.ValueSpan, chars);
        var text = chars[..length];
        if (InternedLookup.TryGetValue(text, out var name))
        {
            return name;
        }

        name = new string(text);
        if (InternedNames.Count < MaxInternedNames)
        {
            InternedNames.TryAdd(name, name);
        }

        return name;
    }

    /// <summary>System timestamps are stored as 100 ns ticks since the Unix epoch: exact, compact, cheap to read.</summary>
    private static long Ticks(DateTimeOffset instant) => instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;

    private static DateTimeOffset Instant(long ticks) => new(DateTimeOffset.UnixEpoch.UtcTicks + ticks, TimeSpan.Zero);
}
