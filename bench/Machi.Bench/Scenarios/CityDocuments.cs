using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Machi.Bench.Scenarios;

/// <summary>
/// The query scenarios' city: entities of five types spread over Aizuwakamatsu the way city assets are, around
/// the representative points of its 町字 and 小字 (the shipped Geolonia town list), each entity a few hundred
/// metres from one of them. Entity n is the same in every run (its values come from a hash of n and the seed).
/// </summary>
internal sealed class CityDocuments
{
    public const string IdPrefix = "urn:ngsi-ld:CityAsset:bench-";

    public static readonly string[] Types = ["Shelter", "StreetLight", "ParkingSpot", "AirQualityObserved", "WasteContainer"];

    private static readonly string[] Statuses = ["working", "withIncidence", "outOfService"];

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly Town[] _towns;
    private readonly int _seed;

    public CityDocuments(int seed)
    {
        _seed = seed;
        using var stream = typeof(CityDocuments).Assembly.GetManifestResourceStream("towns-geolonia.json")
            ?? throw new InvalidOperationException("the town list is not embedded in the bench");
        using var towns = JsonDocument.Parse(stream);
        _towns = [.. towns.RootElement.EnumerateArray().Select(t => new Town(t.GetProperty("town").GetString()!, t.GetProperty("lat").GetDouble(), t.GetProperty("lng").GetDouble()))];
        Districts = [.. _towns.Select(t => t.Name).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The 町字 names entities are placed in (the district attribute).</summary>
    public IReadOnlyList<string> Districts { get; }

    /// <summary>A random point of the city (near one of its places), for geo-query centres.</summary>
    public (double Lon, double Lat) RandomPlace(Random random)
    {
        var town = _towns[random.Next(_towns.Length)];
        return (town.Lon + ((random.NextDouble() - 0.5) * 0.004), town.Lat + ((random.NextDouble() - 0.5) * 0.004));
    }

    public static int MaxBatchLength(int count) => 2 + (count * 700);

    /// <summary>Writes a JSON array of entities <paramref name="first"/>…first+count-1 and returns its length.</summary>
    public int WriteBatch(long first, int count, byte[] destination)
    {
        var buffer = new ArrayBufferWriter<byte>(count * 600);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartArray();
            for (long n = first; n < first + count; n++)
            {
                WriteEntity(w, n);
            }

            w.WriteEndArray();
        }

        buffer.WrittenSpan.CopyTo(destination);
        return buffer.WrittenCount;
    }

    private void WriteEntity(Utf8JsonWriter w, long n)
    {
        var random = new Random(HashCode.Combine(_seed, n));
        var town = _towns[random.Next(_towns.Length)];

        // Up to about 350 m from the town's point in each direction.
        var lon = Math.Round(town.Lon + ((random.NextDouble() - 0.5) * 0.008), 6);
        var lat = Math.Round(town.Lat + ((random.NextDouble() - 0.5) * 0.006), 6);
        w.WriteStartObject();
        w.WriteString("id", IdPrefix + n.ToString(CultureInfo.InvariantCulture));
        w.WriteString("type", Types[n % Types.Length]);
        Property(w, "district", town.Name);
        Property(w, "status", Statuses[random.Next(Statuses.Length)]);
        w.WriteStartObject("capacity");
        w.WriteString("type", "Property");
        w.WriteNumber("value", random.Next(1, 500));
        w.WriteEndObject();
        w.WriteStartObject("location");
        w.WriteString("type", "GeoProperty");
        w.WriteStartObject("value");
        w.WriteString("type", "Point");
        w.WriteStartArray("coordinates");
        w.WriteNumberValue(lon);
        w.WriteNumberValue(lat);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Property(Utf8JsonWriter w, string name, string value)
    {
        w.WriteStartObject(name);
        w.WriteString("type", "Property");
        w.WriteString("value", value);
        w.WriteEndObject();
    }

    private sealed record Town(string Name, double Lat, double Lon);
}
