using System.Text.Json;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Model;
using NetTopologySuite.Geometries;
using NetTopologySuite.IO;

namespace Machi.Broker.Storage.Postgres;

/// <summary>One row of entity_numbers (<see cref="Text"/> null) or entity_strings.</summary>
internal readonly record struct ValueRow(string Attribute, bool Instant, double Number, string? Text);

/// <summary>
/// <see cref="EntityIndexRows.Values"/> as PostgreSQL stores them. Values are coarsened where PostgreSQL cannot hold
/// them exactly, always by a function that keeps order (a ≤ b ⇒ f(a) ≤ f(b)) and equality, so candidates found with
/// the same function applied to the query's bounds (inclusive) never miss a match: numbers and ticks become doubles;
/// text is cut before its first NUL (text cannot hold one) and after 200 code points (a b-tree key holds ~2.7 kB).
/// </summary>
internal static class PostgresValueRows
{
    private const int MaxTextCodePoints = 200;

    public static HashSet<ValueRow> Rows(Entity? entity)
    {
        var rows = new HashSet<ValueRow>();
        foreach (var value in EntityIndexRows.Values(entity))
        {
            rows.Add(value.Value switch
            {
                string s => new ValueRow(value.Attribute, false, 0, Text(s)),
                long l => new ValueRow(value.Attribute, value.Kind == IndexedValueKind.Instant, l, null),
                double d => new ValueRow(value.Attribute, false, d, null),
                _ => throw new InvalidOperationException($"Unexpected index value {value.Value.GetType()}."),
            });
        }

        return rows;
    }

    /// <summary>Text as entity_strings holds it (see the class summary); also cut before an unpaired surrogate, which UTF-8 cannot encode.</summary>
    public static string Text(string value)
    {
        var end = value.Length;
        var codePoints = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\0' || codePoints == MaxTextCodePoints)
            {
                end = i;
                break;
            }

            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                end = i;
                break;
            }

            codePoints++;
        }

        return end == value.Length ? value : value[..end];
    }
}

/// <summary>One row of entity_geo: an entity's GeoProperty name and its geometries as WKB (null: not a geography).</summary>
internal sealed record GeoRow(string Attribute, byte[]? Wkb)
{
    public bool Equals(GeoRow? other) => other is not null && Attribute == other.Attribute
        && (Wkb is null ? other.Wkb is null : other.Wkb is not null && Wkb.AsSpan().SequenceEqual(other.Wkb));

    public override int GetHashCode() => HashCode.Combine(Attribute, Wkb?.Length);
}

/// <summary>How entity and query geometries become PostGIS geographies.</summary>
internal static class PostgresGeo
{
    /// <summary>
    /// Edges are split to at most this many degrees before the cast, so each geodesic edge of the geography stays
    /// within metres of the straight edge in longitude/latitude that the evaluator (NetTopologySuite) sees.
    /// </summary>
    public const double SegmentDegrees = 0.05;

    /// <summary>The SQL of the geography of a WKB parameter (EPSG:4326).</summary>
    public static string Geography(string wkbParameter) =>
        $"ST_Segmentize(ST_GeomFromWKB({wkbParameter}, 4326), {SegmentDegrees.ToString(System.Globalization.CultureInfo.InvariantCulture)})::geography";

    public static List<GeoRow> Rows(Entity? entity)
    {
        var rows = new List<GeoRow>();
        if (entity is null)
        {
            return rows;
        }

        foreach (var (name, instances) in entity.Attributes)
        {
            List<Geometry>? geometries = null;
            var valid = true;
            foreach (var instance in instances)
            {
                if (instance.Kind != AttributeKind.GeoProperty)
                {
                    continue;
                }

                geometries ??= [];
                try
                {
                    using var document = JsonDocument.Parse(instance.PayloadUtf8.ToArray());
                    geometries.Add(GeoJsonGeometry.Parse(document.RootElement));
                }
                catch (Exception ex) when (ex is JsonException or Machi.Ngsi.Errors.NgsiException or ArgumentException)
                {
                    valid = false;
                }
            }

            if (geometries is null)
            {
                continue;
            }

            var collected = geometries.Count == 1 ? geometries[0] : GeoJsonGeometry.Factory.CreateGeometryCollection([.. geometries]);
            rows.Add(new GeoRow(name, valid ? Wkb(collected) : null));
        }

        return rows;
    }

    /// <summary>
    /// The WKB of a geometry that PostGIS can take as a geography meaning what the evaluator means, else null: every
    /// coordinate in range, and spanning less than a hemisphere (beyond, a geography ring's inside is ambiguous, and a
    /// line across the antimeridian would take the short way round instead of the evaluator's long way).
    /// </summary>
    public static byte[]? Wkb(Geometry geometry)
    {
        if (geometry.IsEmpty)
        {
            return null;
        }

        var envelope = geometry.EnvelopeInternal;
        if (envelope.MinX < -180 || envelope.MaxX > 180 || envelope.MinY < -90 || envelope.MaxY > 90 || envelope.Width >= 180 || envelope.Height >= 90)
        {
            return null;
        }

        foreach (var coordinate in geometry.Coordinates)
        {
            if (!double.IsFinite(coordinate.X) || !double.IsFinite(coordinate.Y))
            {
                return null;
            }
        }

        return new WKBWriter(ByteOrder.LittleEndian, handleSRID: false, emitZ: false, emitM: false).Write(geometry);
    }
}
