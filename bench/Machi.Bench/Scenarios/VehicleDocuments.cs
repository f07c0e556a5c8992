using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Machi.Bench.Scenarios;

/// <summary>
/// The NGSI-LD Vehicle entities and update bodies the scenarios send, serialised once up front. An entity body is a
/// fixed prefix, the digits of its number and one of <see cref="_variants"/> pre-built suffixes (its attribute
/// values), so making the body of any entity is three copies, with no JSON serialisation per request.
/// </summary>
internal sealed class VehicleDocuments
{
    public const string IdPrefix = "urn:ngsi-ld:Vehicle:bench-";
    public const string TypeName = "Vehicle";

    /// <summary>The default number of different attribute-value sets the entities cycle through.</summary>
    public const int DefaultVariants = 64;

    private const int UpdateVariants = 256;
    private const string Placeholder = "@ID@";

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        // Keep Japanese text as UTF-8 rather than \u escapes, as a real client would send it.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static readonly string[] VehicleTypes = ["snowPlow", "bus", "garbageTruck", "patrolCar"];
    private static readonly string[] VehicleTypeNames = ["除雪車", "路線バス", "ごみ収集車", "巡回車"];
    private static readonly string[] ServiceStatuses = ["onRoute", "parked", "maintenance"];
    private static readonly DateTimeOffset ObservationStart = new(2025, 1, 15, 7, 0, 0, TimeSpan.Zero);

    private readonly byte[] _prefix;
    private readonly byte[][] _suffixes;
    private readonly byte[][] _updateBodies;
    private readonly byte[][] _speedBodies;
    private readonly string[] _updatePatches;
    private readonly string[] _speedPatches;

    private readonly int _variants;

    /// <param name="variants">How many different sets of attribute values the entities cycle through: few make a commit
    /// of many entities touch few ranges of each value index; real readings are nearly all different.</param>
    public VehicleDocuments(int seed, int variants = DefaultVariants)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(variants, 1);
        _variants = variants;
        var random = new Random(seed);
        _suffixes = new byte[variants][];
        _prefix = [];
        for (int v = 0; v < variants; v++)
        {
            byte[] whole = SerialiseEntity(random, v);
            int at = whole.AsSpan().IndexOf(Encoding.UTF8.GetBytes(Placeholder));
            _prefix = whole[..at];
            _suffixes[v] = whole[(at + Placeholder.Length)..];
            MaxEntityLength = Math.Max(MaxEntityLength, _prefix.Length + 20 + _suffixes[v].Length);
        }

        _updateBodies = new byte[UpdateVariants][];
        _speedBodies = new byte[UpdateVariants][];
        _updatePatches = new string[UpdateVariants];
        _speedPatches = new string[UpdateVariants];
        for (int v = 0; v < UpdateVariants; v++)
        {
            string observedAt = ObservedAt(variants + v);
            _updateBodies[v] = Serialise(w =>
            {
                w.WriteStartObject();
                WriteNumberProperty(w, "speed", Speed(random), "KMH", observedAt);
                WriteNumberProperty(w, "fuelLevel", FuelLevel(random), "P1", observedAt);
                w.WriteEndObject();
            });
            _speedBodies[v] = Serialise(w => WriteNumberAttribute(w, Speed(random), null, observedAt));
            _updatePatches[v] = Encoding.UTF8.GetString(_updateBodies[v]);
            _speedPatches[v] = "{\"speed\":" + Encoding.UTF8.GetString(_speedBodies[v]) + "}";
        }
    }

    /// <summary>Upper bound of one entity body's length in bytes.</summary>
    public int MaxEntityLength { get; }

    /// <summary>PATCH /entities/{id}/attrs bodies: speed and fuelLevel.</summary>
    public IReadOnlyList<byte[]> UpdateBodies => _updateBodies;

    /// <summary>PATCH /entities/{id}/attrs/speed bodies.</summary>
    public IReadOnlyList<byte[]> SpeedBodies => _speedBodies;

    /// <summary>The same changes as <see cref="UpdateBodies"/>, as JSON merge patches of the whole entity.</summary>
    public IReadOnlyList<string> UpdatePatches => _updatePatches;

    /// <summary>The same changes as <see cref="SpeedBodies"/>, as JSON merge patches of the whole entity.</summary>
    public IReadOnlyList<string> SpeedPatches => _speedPatches;

    public static string Id(long number) => IdPrefix + number.ToString(CultureInfo.InvariantCulture);

    /// <summary>The body of entity <paramref name="number"/>, in a new array of exactly its length.</summary>
    public byte[] Entity(long number)
    {
        Span<byte> digits = stackalloc byte[20];
        number.TryFormat(digits, out int length, default, CultureInfo.InvariantCulture);
        byte[] suffix = _suffixes[number % _variants];
        var body = new byte[_prefix.Length + length + suffix.Length];
        _prefix.CopyTo(body, 0);
        digits[..length].CopyTo(body.AsSpan(_prefix.Length));
        suffix.CopyTo(body, _prefix.Length + length);
        return body;
    }

    public int MaxBatchLength(int count) => 2 + (count * (MaxEntityLength + 1));

    /// <summary>Writes a JSON array of entities <paramref name="first"/>…first+count-1 and returns its length.</summary>
    public int WriteBatch(long first, int count, byte[] destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var span = destination.AsSpan();
        int at = 0;
        span[at++] = (byte)'[';
        for (long n = first; n < first + count; n++)
        {
            if (n != first)
            {
                span[at++] = (byte)',';
            }

            _prefix.CopyTo(span[at..]);
            at += _prefix.Length;
            n.TryFormat(span[at..], out int length, default, CultureInfo.InvariantCulture);
            at += length;
            byte[] suffix = _suffixes[n % _variants];
            suffix.CopyTo(span[at..]);
            at += suffix.Length;
        }

        span[at++] = (byte)']';
        return at;
    }

    private static byte[] SerialiseEntity(Random random, int variant)
    {
        string observedAt = ObservedAt(variant);
        int kind = variant % VehicleTypes.Length;
        return Serialise(w =>
        {
            w.WriteStartObject();
            w.WriteString("id", IdPrefix + Placeholder);
            w.WriteString("type", TypeName);
            WriteStringProperty(w, "name", string.Create(CultureInfo.InvariantCulture, $"会津若松市 {VehicleTypeNames[kind]} {variant + 1}号"));
            WriteStringProperty(w, "vehicleType", VehicleTypes[kind]);
            WriteNumberProperty(w, "speed", Speed(random), "KMH", observedAt);
            WriteNumberProperty(w, "heading", Math.Round(random.NextDouble() * 360, 1), "DD", observedAt);
            WriteNumberProperty(w, "fuelLevel", FuelLevel(random), "P1", observedAt);
            WriteStringProperty(w, "serviceStatus", ServiceStatuses[random.Next(ServiceStatuses.Length)]);

            // Inside Aizuwakamatsu: lon 139.88–139.98, lat 37.45–37.53.
            w.WriteStartObject("location");
            w.WriteString("type", "GeoProperty");
            w.WriteStartObject("value");
            w.WriteString("type", "Point");
            w.WriteStartArray("coordinates");
            w.WriteNumberValue(Math.Round(139.88 + (random.NextDouble() * 0.10), 6));
            w.WriteNumberValue(Math.Round(37.45 + (random.NextDouble() * 0.08), 6));
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteString("observedAt", observedAt);
            w.WriteEndObject();

            w.WriteStartObject("isPartOf");
            w.WriteString("type", "Relationship");
            w.WriteString("object", string.Create(CultureInfo.InvariantCulture, $"urn:ngsi-ld:VehicleFleet:aizuwakamatsu-{kind + 1}"));
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    private static void WriteStringProperty(Utf8JsonWriter w, string name, string value)
    {
        w.WriteStartObject(name);
        w.WriteString("type", "Property");
        w.WriteString("value", value);
        w.WriteEndObject();
    }

    private static void WriteNumberProperty(Utf8JsonWriter w, string name, double value, string unitCode, string observedAt)
    {
        w.WritePropertyName(name);
        WriteNumberAttribute(w, value, unitCode, observedAt);
    }

    private static void WriteNumberAttribute(Utf8JsonWriter w, double value, string? unitCode, string observedAt)
    {
        w.WriteStartObject();
        w.WriteString("type", "Property");
        w.WriteNumber("value", value);
        if (unitCode is not null)
        {
            w.WriteString("unitCode", unitCode);
        }

        w.WriteString("observedAt", observedAt);
        w.WriteEndObject();
    }

    private static double Speed(Random random) => Math.Round(random.NextDouble() * 60, 1);

    private static double FuelLevel(Random random) => Math.Round(random.NextDouble(), 2);

    private static string ObservedAt(int variant) =>
        ObservationStart.AddSeconds(variant * 7).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private static byte[] Serialise(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
