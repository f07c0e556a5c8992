using System.Globalization;

namespace Machi.Ngsi.Model;

/// <summary>Lexical checks shared by every parser: URIs, names, date-times (clauses 4.6.2, 4.6.3, 4.6.4).</summary>
public static class NgsiText
{
    /// <summary>The spec's null sentinel (clause 4.5.0 / merge-patch): an attribute with this value is deleted.</summary>
    public const string NullUri = "urn:ngsi-ld:null";

    /// <summary>An absolute URI as RFC 3986 requires for entity ids and relationship objects: a scheme, a colon,
    /// a non-empty rest with no whitespace, control characters or characters URIs never carry.</summary>
    public static bool IsUri(string? s) => s is not null && IsUri(s.AsSpan());

    /// <inheritdoc cref="IsUri(string?)"/>
    public static bool IsUri(ReadOnlySpan<char> s)
    {
        if (s.IsEmpty || s.Length > 2048 || !char.IsAsciiLetter(s[0]))
        {
            return false;
        }

        var colon = -1;
        for (var i = 1; i < s.Length; i++)
        {
            var c = s[i];
            if (c == ':')
            {
                colon = i;
                break;
            }

            if (!char.IsAsciiLetterOrDigit(c) && c != '+' && c != '-' && c != '.')
            {
                return false;
            }
        }

        if (colon < 0 || colon == s.Length - 1)
        {
            return false;
        }

        foreach (var c in s[(colon + 1)..])
        {
            if (c <= ' ' || c == 0x7f || c is '<' or '>' or '"' or '{' or '}' or '|' or '\\' or '^' or '`')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A name usable for an attribute or entity type: a short term or an IRI; never characters the
    /// HTTP binding forbids in names (clause 4.6.2) or anything that breaks a URL path segment.</summary>
    public static bool IsName(string? s)
    {
        if (string.IsNullOrEmpty(s) || s.Length > 512)
        {
            return false;
        }

        foreach (var c in s)
        {
            if (c <= ' ' || c == 0x7f || c is '<' or '>' or '"' or '\'' or '=' or ';' or '(' or ')' or '{' or '}' or '\\' or '^' or '`' or '|' or '[' or ']' or '?' or '&')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Parses an ISO 8601 date-time with a time zone (or Z) into UTC; false on anything else.</summary>
    public static bool TryParseDateTime(string? s, out DateTimeOffset value)
    {
        value = default;
        if (s is null || s.Length < 20 || s.Length > 40 || s[4] != '-' || s[7] != '-' || s[10] != 'T')
        {
            return false;
        }

        if (TryCanonical(s, out value))
        {
            return true;
        }

        var last = s[^1];
        var hasZone = last is 'Z' or 'z' || (s.Length > 6 && (s[^6] is '+' or '-') && s[^3] == ':');
        if (!hasZone)
        {
            return false;
        }

        if (!DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out value))
        {
            return false;
        }

        value = value.ToUniversalTime();
        return true;
    }

    /// <summary>
    /// The canonical text (<see cref="FormatDateTime"/>) of an ISO 8601 date-time, or null when it is not one.
    /// Text already in canonical form — what devices send almost always — is checked digit by digit and returned
    /// as is, without the cost of a culture-aware parse and a format.
    /// </summary>
    public static string? CanonicalDateTime(string s)
    {
        if (TryCanonical(s, out _))
        {
            return s;
        }

        return TryParseDateTime(s, out var instant) ? FormatDateTime(instant) : null;
    }

    /// <summary>Reads text in the canonical form digit by digit (what devices send almost always).</summary>
    private static bool TryCanonical(string s, out DateTimeOffset value)
    {
        // yyyy-MM-ddTHH:mm:ss[.f{1,7}]Z with no trailing zero in the fraction
        value = default;
        if (s.Length < 20 || s.Length == 21 || s.Length > 28 || s[^1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        {
            return false;
        }

        if (s.Length > 20 && (s[19] != '.' || s[^2] == '0'))
        {
            return false;
        }

        for (var i = 0; i < s.Length - 1; i++)
        {
            if (i is 4 or 7 or 10 or 13 or 16 or 19)
            {
                continue;
            }

            if (!char.IsAsciiDigit(s[i]))
            {
                return false;
            }
        }

        int Number(int start, int length)
        {
            var n = 0;
            for (var i = start; i < start + length; i++)
            {
                n = (n * 10) + (s[i] - '0');
            }

            return n;
        }

        var year = Number(0, 4);
        var month = Number(5, 2);
        var day = Number(8, 2);
        var (hour, minute, second) = (Number(11, 2), Number(14, 2), Number(17, 2));
        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }

        var ticks = 0L;
        if (s.Length > 20)
        {
            var digits = s.Length - 21;
            ticks = Number(20, digits);
            for (var i = digits; i < 7; i++)
            {
                ticks *= 10;
            }
        }

        value = new DateTimeOffset(new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).AddTicks(ticks));
        return true;
    }

    /// <summary>The canonical text of an instant: UTC, 'Z', fraction only as long as needed.</summary>
    public static string FormatDateTime(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    /// <summary>A scope (clause 4.18): "/" followed by non-empty levels separated by "/".</summary>
    public static bool IsScope(string? s)
    {
        if (string.IsNullOrEmpty(s) || s[0] != '/' || s.Length > 512)
        {
            return false;
        }

        if (s.Length == 1)
        {
            return false;
        }

        var levelStart = 1;
        for (var i = 1; i <= s.Length; i++)
        {
            if (i == s.Length || s[i] == '/')
            {
                if (i == levelStart)
                {
                    return false;
                }

                levelStart = i + 1;
                continue;
            }

            var c = s[i];
            if (c <= ' ' || c is '#' or '+' or '<' or '>' or '"' or '\'' or '=' or ';' or '(' or ')' or '?' or '&')
            {
                return false;
            }
        }

        return true;
    }
}
