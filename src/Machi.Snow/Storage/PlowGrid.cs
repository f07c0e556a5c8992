using Machi.Snow.Ingestion;

namespace Machi.Snow.Storage;

/// <summary>
/// A fixed grid of cells about 55 m square over the globe. Each driven plowing segment is recorded in every cell it
/// crosses, so "who passed within r metres of here" reads only the few cells around a point (an index lookup each).
/// </summary>
internal static class PlowGrid
{
    public const double LatStep = 0.0005;
    public const double LonStep = 0.000625;

    public static long Cell(double lat, double lon) => Key((long)Math.Floor(lat / LatStep), (long)Math.Floor(lon / LonStep));

    private static long Key(long row, long column) => (row * 10_000_000L) + column;

    /// <summary>The cells a segment crosses, sampled every quarter cell (so the sample nearest any point of it is within 1/8 cell).</summary>
    public static HashSet<long> SegmentCells(double latA, double lonA, double latB, double lonB)
    {
        var steps = (int)Math.Ceiling(Math.Max(Math.Abs(latB - latA) / (LatStep / 4), Math.Abs(lonB - lonA) / (LonStep / 4)));
        steps = Math.Clamp(steps, 1, 4_000);
        var cells = new HashSet<long>();
        for (var i = 0; i <= steps; i++)
        {
            var t = (double)i / steps;
            cells.Add(Cell(latA + ((latB - latA) * t), lonA + ((lonB - lonA) * t)));
        }

        return cells;
    }

    /// <summary>Every cell that may hold a segment passing within <paramref name="metres"/> of the point.</summary>
    public static List<long> CellsAround(double lat, double lon, double metres)
    {
        // A quarter cell more than the radius: the recorded sample may sit up to 1/8 cell beyond the nearest point.
        var dLat = Geo.MetresToLatDegrees(metres) + (LatStep / 4);
        var dLon = Geo.MetresToLonDegrees(metres, lat) + (LonStep / 4);
        var rows = ((long)Math.Floor((lat - dLat) / LatStep), (long)Math.Floor((lat + dLat) / LatStep));
        var columns = ((long)Math.Floor((lon - dLon) / LonStep), (long)Math.Floor((lon + dLon) / LonStep));
        var cells = new List<long>();
        for (var r = rows.Item1; r <= rows.Item2; r++)
        {
            for (var c = columns.Item1; c <= columns.Item2; c++)
            {
                cells.Add(Key(r, c));
            }
        }

        return cells;
    }
}
