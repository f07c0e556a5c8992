using CsCheck;
using Machi.Ngsi.Geo;

namespace Machi.Ngsi.Tests.Geo;

public class GeoMathTests
{
    // Reference distances are Karney's (GeographicLib 2.1.2, `GeodSolve -i -p 6`, WGS84), exact to the micrometre.
    private const double Tolerance = 0.0005;

    [Fact]
    public void Distance_from_Tokyo_Station_to_Aizuwakamatsu_City_Hall_is_201_772_828_m()
    {
        // Tokyo Station (東京駅) to Aizuwakamatsu City Hall (会津若松市役所).
        Assert.Equal(201_772.828444, GeoMath.DistanceMeters(35.681236, 139.767125, 37.494761, 139.929845), Tolerance);
    }

    [Theory]
    [InlineData(0, 0, 0, 180, 20_003_931.458625)] // equatorial antipodes: the shortest way is over a pole
    [InlineData(0, 0, 0, 179.5, 19_980_861.908891)]
    [InlineData(0, 0, 0, 179.3, 19_959_584.699234)] // still along the equator: 179.3 < (1 - f) 180
    [InlineData(0, 0, 0, 90, 10_018_754.171395)]
    [InlineData(0, 0, 90, 0, 10_001_965.729313)] // a quarter meridian
    [InlineData(-90, 0, 90, 0, 20_003_931.458625)]
    [InlineData(90, 0, 90, 123, 0)]
    [InlineData(-90, 17, -89.5, -163, 55_846.975448)]
    [InlineData(45, 10, -45, -170, 20_003_931.458625)]
    [InlineData(30, 0, -30, 179.9, 20_003_008.421509)] // nearly antipodal: Vincenty's iteration fails here
    [InlineData(0.5, -10, -0.5, 169.7, 19_995_624.889961)]
    [InlineData(-41.32, 174.81, 40.96, -5.50, 19_959_679.267354)] // Wellington to Salamanca, nearly antipodal
    [InlineData(51.4778, -0.0015, -33.8688, 151.2093, 16_983_286.170281)]
    [InlineData(35.0, 135.0, 35.0, 135.00001, 0.912882)]
    [InlineData(-60, -179.9, -60, 179.9, 11_159.996065)] // across the antimeridian
    [InlineData(10, 179.99, -10, -179.99, 2_211_710.775725)]
    [InlineData(89.99999, 0, 89.99999, 180, 2.233880)]
    [InlineData(-53.664236744299231, -140.488037592362275, 72.140036725215566, -141.742904863476383, 13_956_645.060592)]
    [InlineData(-41.646158305052197, -128.110221380349174, 67.749007057387757, 42.459031137640494, 17_043_545.295709)]
    [InlineData(89.331675104398698, -134.010867691706267, 29.139181125231062, 46.806564140157064, 6_851_910.284159)]
    [InlineData(27.186715799450852, 93.572380073120371, -26.654305112000095, 274.113611528292381, 19_932_469.884784)]
    [InlineData(-76.937921216885655, -63.913014800096704, 77.590575492646309, 115.230121691823186, 19_928_201.160395)]
    [InlineData(-77.774000861836285, -98.570965014831074, 77.047201314495169, 82.286481175010550, 19_920_248.135071)]
    [InlineData(-2.768501707855478, 50.854022181119802, -2.694348939959620, 50.823713493223217, 8_865.149915)]
    [InlineData(-28.378612110639175, 82.978807795238595, -28.330929255338599, 82.974090715209073, 5_304.658166)]
    [InlineData(-48.638222754251551, -32.283910441594855, -48.729219145789102, -32.302012079196324, 10_206.534036)]
    [InlineData(0, -127.392154576131702, 0.000873098430230, -155.372229718166182, 3_114_727.718543)]
    [InlineData(0.000476322450900, 55.965055752019055, 0, -118.439029729726300, 19_414_573.985605)]
    [InlineData(-0.000439569876175, 113.626777216761525, -0.000819912544199, 171.046805580924911, 6_391_968.318541)]
    [InlineData(90, -155.641440229860336, -7.438164977135386, -155.641440229860336, 10_824_481.679509)]
    [InlineData(-27.791458087563115, 121.754351814562085, 25.730213109841884, 301.754351814562085, 19_775_545.842138)]
    [InlineData(90, -173.672397126549470, -69.348984126775065, 43.785470443922577, 17_698_320.510962)]
    [InlineData(-0.000000001, 174.497495074038341, 0, 353.997495074038341, 19_980_861.908829)]
    [InlineData(0.000000001, 52.197417887161890, 0, 232.097417887161896, 20_003_008.421400)]
    public void Distance_on_WGS84_matches_GeographicLib_to_half_a_millimetre(double lat1, double lon1, double lat2, double lon2, double expected)
    {
        Assert.Equal(expected, GeoMath.DistanceMeters(lat1, lon1, lat2, lon2), Tolerance);
        Assert.Equal(expected, GeoMath.DistanceMeters(lat2, lon2, lat1, lon1), Tolerance);
    }

    // Vincenty (1975), Survey Review 23(176), test lines (a) to (e), with the distances as published; the
    // published millimetres agree with GeographicLib's to 0.5 mm.
    [Theory]
    [InlineData("a", 6_377_397.155, 299.1528128, "55 45 0", "-33 26 0", "108 13 0", 14_110_526.170)]
    [InlineData("b", 6_378_388.0, 297.0, "37 19 54.95367", "26 7 42.83946", "41 28 35.50729", 4_085_966.703)]
    [InlineData("c", 6_378_388.0, 297.0, "35 16 11.24862", "67 22 14.77638", "137 47 28.31435", 8_084_823.839)]
    [InlineData("d", 6_378_388.0, 297.0, "1 0 0", "-0 59 53.83076", "179 17 48.02997", 19_960_000.000)]
    [InlineData("e", 6_378_388.0, 297.0, "1 0 0", "1 1 15.18952", "179 46 17.84244", 19_780_006.558)]
    public void Distance_reproduces_Vincentys_published_test_lines(
        string line, double semiMajorAxis, double inverseFlattening, string lat1, string lat2, string lon12, double expected)
    {
        var ellipsoid = new Ellipsoid(semiMajorAxis, 1 / inverseFlattening);

        var distance = ellipsoid.Distance(Degrees(lat1), 0, Degrees(lat2), Degrees(lon12));

        Assert.True(Math.Abs(distance - expected) <= 0.001, $"line ({line}): {distance} m, published {expected} m");
    }

    [Fact]
    public void Distance_along_the_equator_is_the_arc_of_the_semi_major_axis()
    {
        Assert.Equal(GeoMath.Wgs84SemiMajorAxis * Math.PI / 2, GeoMath.DistanceMeters(0, -45, 0, 45), 1e-6);
    }

    [Fact]
    public void Distance_is_zero_for_the_same_point_written_with_another_longitude()
    {
        Assert.Equal(0, GeoMath.DistanceMeters(35.68, 139.77, 35.68, 139.77 - 360));
        Assert.Equal(0, GeoMath.DistanceMeters(12.5, -180, 12.5, 180));
    }

    [Theory]
    [InlineData(90.5, 0)]
    [InlineData(double.NaN, 0)]
    [InlineData(0, double.PositiveInfinity)]
    public void Distance_rejects_coordinates_that_are_not_on_the_ellipsoid(double lat, double lon)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GeoMath.DistanceMeters(lat, lon, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => GeoMath.DistanceMeters(0, 0, lat, lon));
    }

    private static readonly Gen<(double Lat, double Lon)> AnyPoint = Gen.Frequency(
        (6, Gen.Select(Gen.Double[-90, 90], Gen.Double[-180, 180])),
        (1, Gen.Select(Gen.OneOfConst(-90.0, 0.0, 90.0, 1e-9, -1e-9), Gen.Double[-180, 180])),
        (1, Gen.Select(Gen.Double[-90, 90], Gen.OneOfConst(-180.0, 0.0, 180.0, 179.999999))));

    /// <summary>A point, and another close to it, far from it, or nearly antipodal to it.</summary>
    private static readonly Gen<((double Lat, double Lon) A, (double Lat, double Lon) B)> Pair = AnyPoint.SelectMany(a => Gen.Frequency(
        (3, AnyPoint.Select(b => (a, b))),
        (1, Gen.Select(Gen.Double[-0.01, 0.01], Gen.Double[-0.01, 0.01])
            .Select((dLat, dLon) => (a, (Math.Clamp(a.Lat + dLat, -90, 90), a.Lon + dLon)))),
        (1, Gen.Select(Gen.Double[-0.7, 0.7], Gen.Double[-0.7, 0.7])
            .Select((dLat, dLon) => (a, (Math.Clamp(-a.Lat + dLat, -90, 90), a.Lon + 180 + dLon))))));

    [Fact]
    public void Distance_is_symmetric()
    {
        Pair.Sample(p => GeoMath.DistanceMeters(p.A.Lat, p.A.Lon, p.B.Lat, p.B.Lon)
            == GeoMath.DistanceMeters(p.B.Lat, p.B.Lon, p.A.Lat, p.A.Lon), iter: 20_000);
    }

    [Fact]
    public void Distance_from_a_point_to_itself_is_zero()
    {
        AnyPoint.Sample(p => GeoMath.DistanceMeters(p.Lat, p.Lon, p.Lat, p.Lon) == 0, iter: 10_000);
    }

    [Fact]
    public void Distance_is_positive_for_points_apart_and_at_most_half_the_equator()
    {
        Pair.Sample(p =>
        {
            var d = GeoMath.DistanceMeters(p.A.Lat, p.A.Lon, p.B.Lat, p.B.Lon);

            // The error is absolute, about 10⁻⁸ m at worst for short lines, so "apart" means by 10⁻⁹° (0.1 mm).
            var apart = Math.Abs(p.A.Lat - p.B.Lat) > 1e-9
                || (Math.Abs(GeoMath.NormalizeLongitude(p.A.Lon - p.B.Lon)) * Math.Cos(p.A.Lat * Math.PI / 180) > 1e-9
                    && Math.Abs(p.A.Lat) < 89.9);
            return d >= 0 && (!apart || d > 0) && d <= Math.PI * GeoMath.Wgs84SemiMajorAxis;
        }, iter: 20_000);
    }

    [Fact]
    public void Distance_satisfies_the_triangle_inequality()
    {
        // Within the method's error: Vincenty's series are good to about 0.1 mm per distance.
        Gen.Select(Pair, AnyPoint).Sample((pair, c) =>
        {
            var (a, b) = pair;
            var ab = GeoMath.DistanceMeters(a.Lat, a.Lon, b.Lat, b.Lon);
            var bc = GeoMath.DistanceMeters(b.Lat, b.Lon, c.Lat, c.Lon);
            var ac = GeoMath.DistanceMeters(a.Lat, a.Lon, c.Lat, c.Lon);
            return ac <= ab + bc + 0.001 && ab <= ac + bc + 0.001 && bc <= ab + ac + 0.001;
        }, iter: 20_000);
    }

    [Fact]
    public void Distance_along_a_meridian_matches_the_integrated_meridian_arc()
    {
        // An independent check: Simpson's rule on M(φ) = a(1 - e²) / (1 - e² sin² φ)^(3/2).
        Gen.Select(Gen.Double[-90, 90], Gen.Double[-90, 90], Gen.Double[-180, 180]).Sample((lat1, lat2, lon) =>
        {
            var expected = MeridianArc(lat1, lat2);
            var actual = GeoMath.DistanceMeters(lat1, lon, lat2, lon);
            Assert.True(Math.Abs(actual - expected) <= Tolerance, $"{actual} m, integrated {expected} m");
        }, iter: 2_000);
    }

    [Theory]
    [InlineData(35.681236, 139.767125, 1_000)]
    [InlineData(0, 0, 111_000)]
    [InlineData(-33.8688, 151.2093, 1_500_000)]
    public void BoundingBox_contains_the_circle_but_not_much_more(double lat, double lon, double radius)
    {
        var box = GeoMath.BoundingBox(lat, lon, radius);

        // Due north, south, east and west at the full radius are inside...
        Assert.True(box.Contains(lat + radius / 110_574 * 0.999, lon));
        Assert.True(box.Contains(lat - radius / 110_574 * 0.999, lon));
        Assert.False(box.CrossesAntimeridian);

        // ...and the box is no more than 2 % taller than the circle, at these latitudes.
        var height = GeoMath.DistanceMeters(box.South, lon, box.North, lon);
        Assert.InRange(height, 2 * radius, 2 * radius * 1.02);
    }

    [Fact]
    public void BoundingBox_that_reaches_a_pole_spans_every_longitude()
    {
        var box = GeoMath.BoundingBox(89.5, 10, 100_000);

        Assert.Equal(90, box.North);
        Assert.Equal(-180, box.West);
        Assert.Equal(180, box.East);
        Assert.True(box.Contains(89.6, -170));
    }

    [Fact]
    public void BoundingBox_across_the_antimeridian_has_west_greater_than_east()
    {
        // Taveuni, Fiji, on the 180th meridian.
        var box = GeoMath.BoundingBox(-16.8, 179.9, 50_000);

        Assert.True(box.CrossesAntimeridian);
        Assert.True(box.Contains(-16.8, -179.8));
        Assert.True(box.Contains(-16.8, 179.6));
        Assert.False(box.Contains(-16.8, 0));
    }

    [Fact]
    public void BoundingBox_contains_every_point_within_the_radius()
    {
        var gen = Gen.Select(AnyPoint, Gen.Double[0, 2_000_000], Gen.Double[-1, 1], Gen.Double[-1, 1]);
        gen.Sample((centre, radius, dLat, dLon) =>
        {
            // Candidates around the centre, about half of them inside the circle.
            var reach = radius / 111_000 * 1.3;
            var lat = Math.Clamp(centre.Lat + dLat * reach, -90, 90);
            var lon = centre.Lon + dLon * reach / Math.Max(0.05, Math.Cos(lat * Math.PI / 180));
            var box = GeoMath.BoundingBox(centre.Lat, centre.Lon, radius);
            // The box is a pre-filter for the exact test, so it must hold every point that test keeps.
            return GeoMath.DistanceMeters(centre.Lat, centre.Lon, lat, lon) > radius || box.Contains(lat, lon);
        }, iter: 20_000);
    }

    [Fact]
    public void BoundingBox_rejects_a_negative_or_unbounded_radius()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GeoMath.BoundingBox(0, 0, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => GeoMath.BoundingBox(0, 0, double.PositiveInfinity));
        Assert.Throws<ArgumentOutOfRangeException>(() => GeoMath.BoundingBox(91, 0, 10));
    }

    private static double Degrees(string dms)
    {
        var parts = dms.Split(' ').Select(p => double.Parse(p, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var sign = dms.StartsWith('-') ? -1 : 1;
        return sign * (Math.Abs(parts[0]) + parts[1] / 60 + parts[2] / 3600);
    }

    private static double MeridianArc(double lat1, double lat2)
    {
        const int Steps = 2_000;
        var a = GeoMath.Wgs84SemiMajorAxis;
        var e2 = GeoMath.Wgs84Flattening * (2 - GeoMath.Wgs84Flattening);
        double M(double phi) => a * (1 - e2) / Math.Pow(1 - e2 * Math.Sin(phi) * Math.Sin(phi), 1.5);
        double from = lat1 * Math.PI / 180, to = lat2 * Math.PI / 180, h = (to - from) / Steps, sum = M(from) + M(to);
        for (var i = 1; i < Steps; i++)
        {
            sum += M(from + i * h) * (i % 2 == 1 ? 4 : 2);
        }

        return Math.Abs(sum * h / 3);
    }
}
