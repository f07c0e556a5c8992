using System.Text.Json;
using Machi.Ngsi.Model;

namespace Machi.Broker.Storage;

/// <summary>How an indexed value is compared: as written (numbers, strings, booleans) or as an instant in time.</summary>
internal enum IndexedValueKind
{
    Scalar,

    /// <summary>A date-time, as UTC ticks, so comparisons follow time whatever offset the text was written with.</summary>
    Instant,
}

/// <summary>One value an attribute holds, as the value index stores it.</summary>
/// <param name="Value">A long, double or string (booleans are 0/1).</param>
internal readonly record struct IndexedValue(string Attribute, IndexedValueKind Kind, object Value);

/// <summary>The bounding box of an attribute's geometries (all its instances), in degrees.</summary>
internal readonly record struct IndexedBox(string Attribute, double MinLon, double MaxLon, double MinLat, double MaxLat);

/// <summary>
/// The index rows an entity needs for queries: every comparable value of every top-level attribute (so a q
/// comparison on an attribute can start from the values instead of scanning entities) and one box per
/// GeoProperty name (for the R*Tree). The rows only narrow the candidates; the query evaluator decides on the
/// entity itself, so a row too many costs time, never correctness — a row too few would lose results, which is
/// why every member a q comparison can match is listed.
/// </summary>
internal static class EntityIndexRows
{
    /// <summary>The names in <paramref name="names"/> that are not in <paramref name="other"/> (lists are short).</summary>
    public static List<string> Except(IEnumerable<string>? names, IEnumerable<string>? other)
    {
        var result = new List<string>();
        foreach (var name in names ?? [])
        {
            if (other is null || !other.Contains(name))
            {
                result.Add(name);
            }
        }

        return result;
    }

    public static HashSet<IndexedValue> Values(Entity? entity)
    {
        var rows = new HashSet<IndexedValue>();
        if (entity is not null)
        {
            AddValues(entity, rows);
        }

        return rows;
    }

    /// <summary>Adds the value rows of <paramref name="entity"/> to <paramref name="rows"/> (a list may get a row twice).</summary>
    public static void AddValues(Entity entity, ICollection<IndexedValue> rows)
    {
        foreach (var (name, instances) in entity.Attributes)
        {
            foreach (var instance in instances)
            {
                AddValues(name, instance.Kind, instance.PayloadUtf8, rows);
            }
        }
    }

    /// <summary>Adds the value rows of one instance of attribute <paramref name="name"/> with the given payload.</summary>
    public static void AddValues(string name, AttributeKind kind, ReadOnlySpan<byte> payload, ICollection<IndexedValue> rows)
    {
        if (kind is AttributeKind.GeoProperty or AttributeKind.JsonProperty)
        {
            return;
        }

        var reader = new Utf8JsonReader(payload);
        if (reader.Read())
        {
            AddValues(rows, name, ref reader, depth: 0);
        }
    }

    public static List<IndexedBox> Boxes(Entity? entity)
    {
        var boxes = new List<IndexedBox>();
        if (entity is null)
        {
            return boxes;
        }

        var box = new BoxBuilder();
        foreach (var (name, instances) in entity.Attributes)
        {
            foreach (var instance in instances)
            {
                if (instance.Kind == AttributeKind.GeoProperty)
                {
                    box.Add(instance.PayloadUtf8);
                }
            }

            box.AddTo(boxes, name);
        }

        return boxes;
    }

    // Scalars are indexed; arrays contribute each element; objects contribute their members' values (a
    // languageMap's strings, a ListRelationship item's object, a typed {"@type","@value"} literal), one level deep.
    private static void AddValues(ICollection<IndexedValue> rows, string name, ref Utf8JsonReader reader, int depth)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Number:
                rows.Add(new IndexedValue(name, IndexedValueKind.Scalar, Number(ref reader)));
                break;
            case JsonTokenType.True:
                rows.Add(new IndexedValue(name, IndexedValueKind.Scalar, 1L));
                break;
            case JsonTokenType.False:
                rows.Add(new IndexedValue(name, IndexedValueKind.Scalar, 0L));
                break;
            case JsonTokenType.String:
                var text = reader.GetString()!;
                rows.Add(new IndexedValue(name, IndexedValueKind.Scalar, text));
                if (NgsiText.TryParseDateTime(text, out var instant))
                {
                    rows.Add(new IndexedValue(name, IndexedValueKind.Instant, instant.UtcTicks));
                }

                break;
            case JsonTokenType.StartArray or JsonTokenType.StartObject when depth < 2:
                var end = reader.TokenType == JsonTokenType.StartArray ? JsonTokenType.EndArray : JsonTokenType.EndObject;
                while (reader.Read() && reader.TokenType != end)
                {
                    if (reader.TokenType == JsonTokenType.PropertyName)
                    {
                        continue;
                    }

                    AddValues(rows, name, ref reader, depth + 1);
                }

                break;
            case JsonTokenType.StartArray or JsonTokenType.StartObject:
                reader.Skip();
                break;
            default:
                break;
        }
    }

    /// <summary>A number as SQLite will compare it: integral values as long (5 and 5.0 are one row).</summary>
    private static object Number(ref Utf8JsonReader reader)
    {
        if (reader.TryGetInt64(out var l))
        {
            return l;
        }

        var d = reader.GetDouble();
        return Math.Floor(d) == d && Math.Abs(d) < 9e18 ? (long)d : d;
    }

    // Every position in a GeoJSON geometry is an innermost array [lon, lat, (alt)] of "coordinates".
    private static void AddCoordinates(ref BoxBuilder box, ReadOnlySpan<byte> geometry)
    {
        var reader = new Utf8JsonReader(geometry);
        var inCoordinates = false;
        var depth = 0;
        var ordinal = 0;
        double lon = 0;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName when reader.CurrentDepth == 1:
                    inCoordinates = reader.ValueTextEquals("coordinates"u8);
                    break;
                case JsonTokenType.StartArray when inCoordinates:
                    depth++;
                    ordinal = 0;
                    break;
                case JsonTokenType.EndArray when inCoordinates:
                    depth--;
                    inCoordinates = depth > 0;
                    break;
                case JsonTokenType.Number when inCoordinates:
                    if (ordinal == 0)
                    {
                        lon = reader.GetDouble();
                    }
                    else if (ordinal == 1)
                    {
                        box.Add(lon, reader.GetDouble());
                    }

                    ordinal++;
                    break;
                default:
                    break;
            }
        }
    }

    /// <summary>The box of one attribute name's geometries, built instance by instance.</summary>
    internal struct BoxBuilder
    {
        private double _minLon;
        private double _maxLon;
        private double _minLat;
        private double _maxLat;
        private bool _hasPoints;

        /// <summary>Takes in every position of a GeoJSON geometry.</summary>
        public void Add(ReadOnlySpan<byte> geometry) => AddCoordinates(ref this, geometry);

        /// <summary>Adds the box, when it has a point, to <paramref name="boxes"/> as <paramref name="name"/>'s, and starts again.</summary>
        public void AddTo(List<IndexedBox> boxes, string name)
        {
            if (_hasPoints)
            {
                boxes.Add(new IndexedBox(name, _minLon, _maxLon, _minLat, _maxLat));
            }

            this = default;
        }

        public void Add(double lon, double lat)
        {
            if (!_hasPoints)
            {
                (_minLon, _maxLon, _minLat, _maxLat, _hasPoints) = (lon, lon, lat, lat, true);
                return;
            }

            _minLon = Math.Min(_minLon, lon);
            _maxLon = Math.Max(_maxLon, lon);
            _minLat = Math.Min(_minLat, lat);
            _maxLat = Math.Max(_maxLat, lat);
        }
    }
}
