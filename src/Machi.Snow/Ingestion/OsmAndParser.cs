using System.Globalization;

namespace Machi.Snow.Ingestion;

/// <summary>
/// The OsmAnd / Traccar HTTP position protocol (what the Traccar Client app and many GPS trackers send):
/// <c>id</c> (or <c>deviceid</c>), <c>lat</c> and <c>lon</c> (or <c>location=lat,lon</c>), <c>timestamp</c> (Unix
/// seconds, milliseconds, or ISO 8601), <c>speed</c> in knots, <c>bearing</c>/<c>heading</c> in degrees, <c>altitude</c>
/// (m), <c>accuracy</c> (m), <c>batt</c> (%), and Machi's extra <c>plow</c> (or <c>state</c>): plowing, salting,
/// travelling. The token comes as <c>token</c> or in <c>Authorization: Bearer</c>. Pure: never throws on any input.
/// </summary>
internal static class OsmAndParser
{
    public const double KnotsToKmh = 1.852;
    private const int MaxIdLength = 64;

    public static ParseResult Parse(IEnumerable<KeyValuePair<string, string?>> fields, string? bearerToken, DateTimeOffset now, string source = "osmand")
    {
        ArgumentNullException.ThrowIfNull(fields);
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in fields)
        {
            if (key is not null && value is not null && !values.ContainsKey(key))
            {
                values[key] = value;
            }
        }

        var id = Get(values, "id") ?? Get(values, "deviceid");
        if (id is null)
        {
            return ParseResult.Bad("The unit's id is missing (id=…).");
        }

        if (!IsDeviceId(id))
        {
            return ParseResult.Bad($"The id must be 1–{MaxIdLength} letters, digits, '-', '_' or '.'.");
        }

        double lat, lon;
        if (Get(values, "location") is { } location)
        {
            var parts = location.Split(',');
            if (parts.Length != 2 || !TryNumber(parts[0], out lat) || !TryNumber(parts[1], out lon))
            {
                return ParseResult.Bad("location must be 'lat,lon' in decimal degrees.");
            }
        }
        else
        {
            var latText = Get(values, "lat");
            var lonText = Get(values, "lon");
            if (latText is null || lonText is null)
            {
                return ParseResult.Bad("lat and lon are required (decimal degrees).");
            }

            if (!TryNumber(latText, out lat) || !TryNumber(lonText, out lon))
            {
                return ParseResult.Bad("lat and lon must be decimal numbers.");
            }
        }

        if (lat is < -90 or > 90 || lon is < -180 or > 180)
        {
            return ParseResult.Bad("lat must be within ±90 and lon within ±180 degrees.");
        }

        var time = now;
        if (Get(values, "timestamp") is { } stamp)
        {
            if (ParseTimestamp(stamp) is not { } parsed)
            {
                return ParseResult.Bad("timestamp must be Unix seconds, Unix milliseconds or an ISO 8601 date-time.");
            }

            time = parsed;
        }

        if (!TryOptional(values, "speed", out var knots, min: 0, max: 10_000)
            || !TryOptional(values, "bearing", out var bearing, min: -360, max: 360)
            || !TryOptional(values, "heading", out var heading, min: -360, max: 360)
            || !TryOptional(values, "altitude", out var altitude, min: -1_000, max: 100_000)
            || !TryOptional(values, "accuracy", out var accuracy, min: 0, max: 1_000_000)
            || !TryOptional(values, "batt", out var battery, min: 0, max: 100))
        {
            return ParseResult.Bad("speed (knots, ≥ 0), bearing/heading (degrees), altitude (m), accuracy (m, ≥ 0) and batt (0–100) must be numbers in range.");
        }

        var stateText = Get(values, "plow") ?? Get(values, "state");
        var state = PlowStates.Parse(stateText);
        if (state is { } s && !Enum.IsDefined(s))
        {
            return ParseResult.Bad("plow must be plowing, salting or travelling.");
        }

        var direction = bearing ?? heading;
        // Only a direction outside [0, 360) is folded into it: folding costs a tiny bearing its low digits.
        if (direction is { } d and (< 0 or >= 360))
        {
            direction = ((d % 360) + 360) % 360;
        }

        var token = Get(values, "token") ?? (string.IsNullOrWhiteSpace(bearerToken) ? null : bearerToken.Trim());
        return ParseResult.Ok(new PositionReport(
            id, token, lat, lon, time, knots * KnotsToKmh, direction, altitude, accuracy, battery, state ?? PlowState.Travelling, source));
    }

    public static bool IsDeviceId(string id) =>
        id.Length is > 0 and <= MaxIdLength && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    public static DateTimeOffset? ParseTimestamp(string text)
    {
        text = text.Trim();
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number))
        {
            // Traccar's rule: more than 10^12 is milliseconds.
            try
            {
                return number > 1_000_000_000_000L ? DateTimeOffset.FromUnixTimeMilliseconds(number) : DateTimeOffset.FromUnixTimeSeconds(number);
            }
            catch (ArgumentOutOfRangeException)
            {
                return null;
            }
        }

        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && double.IsFinite(seconds))
        {
            return seconds is > 0 and < 253_402_300_799 ? DateTimeOffset.FromUnixTimeMilliseconds((long)(seconds * 1000)) : null;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var iso)
            ? iso
            : null;
    }

    private static string? Get(Dictionary<string, string> values, string key) =>
        values.TryGetValue(key, out var value) && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;

    private static bool TryNumber(string text, out double value) =>
        double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    private static bool TryOptional(Dictionary<string, string> values, string key, out double? value, double min, double max)
    {
        value = null;
        if (Get(values, key) is not { } text)
        {
            return true;
        }

        if (!TryNumber(text, out var number) || number < min || number > max)
        {
            return false;
        }

        value = number;
        return true;
    }
}
