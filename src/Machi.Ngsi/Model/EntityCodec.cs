using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Machi.Ngsi.Model;

/// <summary>
/// The stored form of an entity: compact JSON with expanded names, independent of any @context.
/// Short member names and integer timestamps keep rows small; the layout is versioned by the "v" member.
/// Version 2 (written since session 12; version 1 documents are still read) leaves out what the reader can tell
/// without it: an instance's "c"/"m" when they are the entity's, its "k" when it is a Property, and the NGSI-LD
/// prefixes of names (<see cref="Abbreviations"/>). A batch-upserted city entity fell from ~1,460 to ~700 bytes, and
/// every entity write stores its document twice (the entity and the change log): the write-ahead log's bytes are
/// much of what a write costs.
/// </summary>
public static class EntityCodec
{
    private const int Version = 2;

    /// <summary>
    /// Name prefixes version 2 writes as "~" and a letter ("~d" + "speed"); a name that itself starts with "~" is
    /// written with a second one ("~~x"). Only names are abbreviated (types, attribute and sub-attribute names),
    /// never ids or values.
    /// </summary>
    private static readonly (char Code, string Prefix)[] Abbreviations =
    [
        ('d', JsonLd.CoreContext.DefaultVocab),
        ('n', "https://uri.etsi.org/ngsi-ld/"),
    ];

    private const char Abbreviated = '~';

    // Names longer than this are written and read as they are (stack buffers).
    private const int MaxAbbreviatedName = 256;

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
            WriteName(w, t, property: false);
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
        WriteMap(w, entity.Attributes, new Stamps(entity.CreatedAt, entity.ModifiedAt));
        w.WriteEndObject();
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes one attribute instance to <paramref name="output"/> inside a nameless carrier: what <see cref="Decode"/>
    /// reads back as an entity with id "" whose only attribute "" holds the instance (the temporal history stores
    /// instances so). The carrier's members that would hold their defaults (no types, no timestamps) are left out, and
    /// so are the instance's own createdAt and modifiedAt: the history keeps them in columns of the row and sets them
    /// on the decoded instance (its sub-attributes keep theirs).
    /// </summary>
    public static void EncodeInstance(AttributeInstance instance, IBufferWriter<byte> output)
    {
        var w = Start(output, string.Empty);
        w.WritePropertyName("attrs");
        w.WriteStartObject();
        w.WriteStartArray(string.Empty);
        WriteInstance(w, instance, new Stamps(instance.CreatedAt, instance.ModifiedAt), sub: Stamps.None);
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

    /// <summary>The createdAt and modifiedAt an instance is written without when it has them (null: none).</summary>
    private readonly record struct Stamps(DateTimeOffset? CreatedAt, DateTimeOffset? ModifiedAt)
    {
        public static Stamps None => default;
    }

    private static void WriteMap(Utf8JsonWriter w, AttributeMap map, Stamps implied)
    {
        w.WriteStartObject();
        foreach (var (name, instances) in map)
        {
            WriteName(w, name, property: true);
            w.WriteStartArray();
            foreach (var a in instances)
            {
                WriteInstance(w, a, implied, implied);
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
    }

    /// <param name="implied">The timestamps the reader will give this instance when it has none written.</param>
    /// <param name="sub">The same for its sub-attributes.</param>
    private static void WriteInstance(Utf8JsonWriter w, AttributeInstance a, Stamps implied, Stamps sub)
    {
        w.WriteStartObject();
        if (a.Kind != AttributeKind.Property) w.WriteString("k", AttributeKinds.Name(a.Kind));
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

        if (a.CreatedAt != implied.CreatedAt) w.WriteNumber("c", Ticks(a.CreatedAt));
        if (a.ModifiedAt != implied.ModifiedAt) w.WriteNumber("m", Ticks(a.ModifiedAt));
        if (a.Sub is { Count: > 0 })
        {
            w.WritePropertyName("sub");
            WriteMap(w, a.Sub, sub);
        }

        w.WriteEndObject();
    }

    /// <summary>Writes a name (a property name or a string value) in its abbreviated form (<see cref="Abbreviations"/>).</summary>
    private static void WriteName(Utf8JsonWriter w, string name, bool property)
    {
        Span<char> buffer = stackalloc char[MaxAbbreviatedName + 2];
        ReadOnlySpan<char> written = name.Length <= MaxAbbreviatedName ? buffer[..Abbreviate(name, buffer)] : name;

        if (property)
        {
            w.WritePropertyName(written);
        }
        else
        {
            w.WriteStringValue(written);
        }
    }

    /// <summary>Writes <paramref name="name"/>'s stored form into <paramref name="output"/>; its length.</summary>
    private static int Abbreviate(string name, Span<char> output)
    {
        foreach (var (code, prefix) in Abbreviations)
        {
            // A name that is the prefix alone, or whose rest starts with "~", is written out ("~d~x" would read as "~d" + "~x").
            if (name.Length > prefix.Length && name.StartsWith(prefix, StringComparison.Ordinal) && name[prefix.Length] != Abbreviated)
            {
                output[0] = Abbreviated;
                output[1] = code;
                name.AsSpan(prefix.Length).CopyTo(output[2..]);
                return name.Length - prefix.Length + 2;
            }
        }

        if (name.StartsWith(Abbreviated))
        {
            output[0] = Abbreviated;
            name.CopyTo(output[1..]);
            return name.Length + 1;
        }

        name.CopyTo(output);
        return name.Length;
    }

    /// <summary>The name a stored (version 2) name stands for, into <paramref name="output"/>; its length, or -1 when it does not fit.</summary>
    private static int Expand(ReadOnlySpan<char> stored, Span<char> output)
    {
        if (stored.Length < 2 || stored[0] != Abbreviated)
        {
            return stored.TryCopyTo(output) ? stored.Length : -1;
        }

        if (stored[1] == Abbreviated)
        {
            return stored[1..].TryCopyTo(output) ? stored.Length - 1 : -1;
        }

        foreach (var (code, prefix) in Abbreviations)
        {
            if (stored[1] == code)
            {
                if (prefix.Length + stored.Length - 2 > output.Length)
                {
                    return -1;
                }

                prefix.CopyTo(output);
                stored[2..].CopyTo(output[prefix.Length..]);
                return prefix.Length + stored.Length - 2;
            }
        }

        return stored.TryCopyTo(output) ? stored.Length : -1;
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
        var abbreviated = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var member = Member(ref reader);
            reader.Read();
            switch (member)
            {
                case "v": abbreviated = reader.GetInt32() >= 2; break;
                case "id": id = reader.GetString(); break;
                case "type": types = ReadStrings(ref reader, abbreviated); break;
                case "scope": scope = ReadStrings(ref reader, abbreviated: false); break;
                case "c": created = Instant(reader.GetInt64()); break;
                case "m": modified = Instant(reader.GetInt64()); break;

                // "c" and "m" come before "attrs": its instances take them when they have none of their own.
                case "attrs": attrs = ReadMap(ref reader, utf8, abbreviated, created, modified); break;
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

    private static List<string> ReadStrings(ref Utf8JsonReader reader, bool abbreviated)
    {
        var list = new List<string>(1);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            list.Add(Name(ref reader, abbreviated));
        }

        return list;
    }

    private static AttributeMap ReadMap(ref Utf8JsonReader reader, ReadOnlySpan<byte> utf8, bool abbreviated, DateTimeOffset created, DateTimeOffset modified)
    {
        var map = new AttributeMap();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = Name(ref reader, abbreviated);
            reader.Read(); // [
            var instances = new List<AttributeInstance>(1);
            while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                instances.Add(ReadInstance(ref reader, utf8, abbreviated, created, modified));
            }

            map[name] = instances;
        }

        return map;
    }

    private static AttributeInstance ReadInstance(ref Utf8JsonReader reader, ReadOnlySpan<byte> utf8, bool abbreviated, DateTimeOffset created, DateTimeOffset modified)
    {
        var a = AttributeInstance.FromStored(AttributeKind.Property, []);
        a.CreatedAt = created;
        a.ModifiedAt = modified;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var member = Member(ref reader);
            reader.Read();
            switch (member)
            {
                case "k":
                    a.Kind = AttributeKinds.TryParse(Name(ref reader, abbreviated: false), out var kind)
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

                // A sub-attribute without timestamps of its own has the entity's (version 2 leaves them out so).
                case "sub": a.Sub = ReadMap(ref reader, utf8, abbreviated, created, modified); break;
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

    private static string Name(ref Utf8JsonReader reader, bool abbreviated)
    {
        if (reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > 512)
        {
            var whole = reader.GetString()!;
            if (!abbreviated || whole.Length > MaxAbbreviatedName + 2)
            {
                return whole;
            }

            Span<char> expanded = stackalloc char[MaxAbbreviatedName + 64];
            var n = Expand(whole, expanded);
            return n < 0 ? whole : new string(expanded[..n]);
        }

        Span<char> chars = stackalloc char[512];
        var length = System.Text.Encoding.UTF8.GetChars(reader.ValueSpan, chars);
        ReadOnlySpan<char> text = chars[..length];
        var expand = abbreviated && text.Length > 0 && text[0] == Abbreviated;
        Span<char> full = expand ? stackalloc char[640] : default;
        if (expand)
        {
            var n = Expand(text, full);
            text = n < 0 ? text : full[..n];
        }

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
