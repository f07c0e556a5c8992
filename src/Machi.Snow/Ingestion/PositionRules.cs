using Machi.Snow.Storage;

namespace Machi.Snow.Ingestion;

/// <summary>The city's rules for a believable position: inside the city, not faster than a plow can go, not from the future.</summary>
internal static class PositionRules
{
    /// <summary>Below this distance an implied speed is GPS jitter, not a jump.</summary>
    private const double JitterMetres = 200;

    public static Rejection? Check(PositionReport report, SnowOptions options, DateTimeOffset now, TrackFix? previous)
    {
        if (report.Lat < options.South || report.Lat > options.North || report.Lon < options.West || report.Lon > options.East)
        {
            return new Rejection(RejectReason.OutsideCity, FormattableString.Invariant(
                $"({report.Lat}, {report.Lon}) is outside the city's area (lat {options.South}–{options.North}, lon {options.West}–{options.East})."));
        }

        if (report.SpeedKmh > options.MaxSpeedKmh)
        {
            return new Rejection(RejectReason.TooFast, FormattableString.Invariant(
                $"A speed of {report.SpeedKmh:0.#} km/h is over the {options.MaxSpeedKmh:0} km/h a plow can go."));
        }

        if (report.Time > now + options.FutureTolerance)
        {
            return new Rejection(RejectReason.FutureTimestamp, FormattableString.Invariant(
                $"The timestamp {report.Time:yyyy-MM-ddTHH:mm:ssZ} is in the future (server time {now:yyyy-MM-ddTHH:mm:ssZ})."));
        }

        if (previous is not null && report.Time > previous.Time)
        {
            var metres = Geo.Distance(previous.Lat, previous.Lon, report.Lat, report.Lon);
            var hours = (report.Time - previous.Time).TotalHours;
            if (metres > JitterMetres && metres / 1000 / hours > options.MaxSpeedKmh)
            {
                return new Rejection(RejectReason.TooFast, FormattableString.Invariant(
                    $"The unit would have moved {metres:0} m in {(report.Time - previous.Time).TotalSeconds:0} s since its last position ({metres / 1000 / hours:0} km/h, over {options.MaxSpeedKmh:0} km/h)."));
            }
        }

        return null;
    }
}

/// <summary>Small-distance geometry on WGS84 (an equirectangular projection is exact enough at tens of metres).</summary>
internal static class Geo
{
    private const double MetresPerDegree = 111_320;

    /// <summary>Great-circle distance in metres (haversine).</summary>
    public static double Distance(double lat1, double lon1, double lat2, double lon2)
    {
        const double R = 6_371_008.8;
        var dLat = double.DegreesToRadians(lat2 - lat1);
        var dLon = double.DegreesToRadians(lon2 - lon1);
        var a = Math.Pow(Math.Sin(dLat / 2), 2)
            + (Math.Cos(double.DegreesToRadians(lat1)) * Math.Cos(double.DegreesToRadians(lat2)) * Math.Pow(Math.Sin(dLon / 2), 2));
        return 2 * R * Math.Asin(Math.Min(1, Math.Sqrt(a)));
    }

    /// <summary>Distance in metres from a point to the segment a–b (a point when a = b).</summary>
    public static double DistanceToSegment(double lat, double lon, double latA, double lonA, double latB, double lonB)
    {
        var k = Math.Cos(double.DegreesToRadians(lat)) * MetresPerDegree;
        double px = lon * k, py = lat * MetresPerDegree;
        double ax = lonA * k, ay = latA * MetresPerDegree, bx = lonB * k, by = latB * MetresPerDegree;
        double dx = bx - ax, dy = by - ay;
        var lengthSquared = (dx * dx) + (dy * dy);
        var t = lengthSquared == 0 ? 0 : Math.Clamp((((px - ax) * dx) + ((py - ay) * dy)) / lengthSquared, 0, 1);
        double cx = ax + (t * dx) - px, cy = ay + (t * dy) - py;
        return Math.Sqrt((cx * cx) + (cy * cy));
    }

    public static double MetresToLatDegrees(double metres) => metres / MetresPerDegree;

    public static double MetresToLonDegrees(double metres, double lat) => metres / (MetresPerDegree * Math.Cos(double.DegreesToRadians(lat)));
}
