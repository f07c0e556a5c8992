using Machi.Ngsi.Geo;
using NetTopologySuite.Geometries;

namespace Machi.Ngsi.Query;

/// <summary>
/// Geodesic distance on WGS84, in metres, from a point to the nearest point of a geometry, for georel=near.
/// </summary>
/// <remarks>
/// <para>To a point: <see cref="GeoMath.DistanceMeters"/> (Vincenty's series with a bracketed solve, within 0.1 mm
/// of GeographicLib). Inside a polygon (boundary included): 0.</para>
/// <para>To a line or polygon edge: the edge is the straight line in longitude/latitude between its vertices, the
/// same edge NetTopologySuite's predicates see. The distance to it is minimised over the edge parameter t: nine
/// evenly spaced samples pick the best bracket, then a golden-section search narrows it until the bracket is below
/// 10⁻¹⁰ of the edge, and the exact geodesic distance is taken at the result. That is exact to Vincenty's precision
/// when the distance along the edge has one minimum per bracket, which holds for edges of city and regional size
/// (up to hundreds of kilometres); on an edge spanning a continent, passing near the query point, two
/// minima could fall within one ninth of the edge and the nearer one be missed.</para>
/// <para>The yes/no test <see cref="IsWithin"/> first drops every edge whose bounding box misses
/// <see cref="GeoMath.BoundingBox"/> of the circle, which never drops a close edge, so the exact search runs only
/// on the few edges near the point.</para>
/// </remarks>
internal static class GeoDistance
{
    private const int Samples = 8;
    private static readonly double InverseGolden = (Math.Sqrt(5) - 1) / 2;

    /// <summary>The distance in metres from (lat, lon) to the nearest point of the geometry.</summary>
    public static double Meters(Geometry geometry, double lat, double lon)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        if (geometry is IPolygonal && geometry.Covers(geometry.Factory.CreatePoint(new Coordinate(lon, lat))))
        {
            return 0;
        }

        var best = double.PositiveInfinity;
        foreach (var part in Parts(geometry))
        {
            if (part is Point point)
            {
                best = Math.Min(best, GeoMath.DistanceMeters(lat, lon, point.Y, point.X));
                continue;
            }

            var line = (LineString)part;
            for (var i = 1; i < line.NumPoints; i++)
            {
                best = Math.Min(best, ToSegment(lat, lon, line.GetCoordinateN(i - 1), line.GetCoordinateN(i)));
            }

            if (line.NumPoints == 1)
            {
                best = Math.Min(best, GeoMath.DistanceMeters(lat, lon, line.GetCoordinateN(0).Y, line.GetCoordinateN(0).X));
            }
        }

        return best;
    }

    /// <summary>Whether some point of the geometry is at most <paramref name="radius"/> metres from (lat, lon).</summary>
    public static bool IsWithin(Geometry geometry, double lat, double lon, double radius)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        if (radius < 0)
        {
            return false;
        }

        var box = GeoMath.BoundingBox(lat, lon, radius);
        if (!Overlaps(box, geometry.EnvelopeInternal))
        {
            return false;
        }

        if (geometry is IPolygonal && geometry.Covers(geometry.Factory.CreatePoint(new Coordinate(lon, lat))))
        {
            return true;
        }

        foreach (var part in Parts(geometry))
        {
            if (part is Point point)
            {
                if (box.Contains(point.Y, point.X) && GeoMath.DistanceMeters(lat, lon, point.Y, point.X) <= radius)
                {
                    return true;
                }

                continue;
            }

            var line = (LineString)part;
            for (var i = 1; i < line.NumPoints; i++)
            {
                var a = line.GetCoordinateN(i - 1);
                var b = line.GetCoordinateN(i);
                if (Overlaps(box, new Envelope(a, b)) && ToSegment(lat, lon, a, b) <= radius)
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>The points and lines (polygon rings included) a geometry is drawn with.</summary>
    private static IEnumerable<Geometry> Parts(Geometry geometry)
    {
        for (var i = 0; i < geometry.NumGeometries; i++)
        {
            var part = geometry.GetGeometryN(i);
            if (part is Polygon polygon)
            {
                yield return polygon.ExteriorRing;
                foreach (var hole in polygon.InteriorRings)
                {
                    yield return hole;
                }
            }
            else if (!part.IsEmpty)
            {
                yield return part;
            }
        }
    }

    private static double ToSegment(double lat, double lon, Coordinate a, Coordinate b)
    {
        double At(double t) => GeoMath.DistanceMeters(lat, lon, a.Y + t * (b.Y - a.Y), a.X + t * (b.X - a.X));

        var bestIndex = 0;
        var best = double.PositiveInfinity;
        for (var k = 0; k <= Samples; k++)
        {
            var d = At((double)k / Samples);
            if (d < best)
            {
                best = d;
                bestIndex = k;
            }
        }

        var lo = Math.Max(0, bestIndex - 1) / (double)Samples;
        var hi = Math.Min(Samples, bestIndex + 1) / (double)Samples;
        var x1 = hi - InverseGolden * (hi - lo);
        var x2 = lo + InverseGolden * (hi - lo);
        var f1 = At(x1);
        var f2 = At(x2);
        while (hi - lo > 1e-10)
        {
            if (f1 <= f2)
            {
                hi = x2;
                x2 = x1;
                f2 = f1;
                x1 = hi - InverseGolden * (hi - lo);
                f1 = At(x1);
            }
            else
            {
                lo = x1;
                x1 = x2;
                f1 = f2;
                x2 = lo + InverseGolden * (hi - lo);
                f2 = At(x2);
            }
        }

        return Math.Min(best, Math.Min(f1, f2));
    }

    private static bool Overlaps(GeoBox box, Envelope envelope)
    {
        if (envelope.IsNull || envelope.MaxY < box.South || envelope.MinY > box.North)
        {
            return false;
        }

        return box.CrossesAntimeridian
            ? envelope.MaxX >= box.West || envelope.MinX <= box.East
            : envelope.MaxX >= box.West && envelope.MinX <= box.East;
    }
}
