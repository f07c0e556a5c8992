using System.Diagnostics.CodeAnalysis;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.JsonLd;

/// <summary>The JSON-LD context Link header (JSON-LD 1.1 §6.1): <c>&lt;url&gt;; rel="http://www.w3.org/ns/json-ld#context"</c>.</summary>
public static class JsonLdLink
{
    public const string ContextRelation = "http://www.w3.org/ns/json-ld#context";

    /// <summary>The Link header value pointing at a context URL.</summary>
    public static string Format(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        return $"<{url}>; rel=\"{ContextRelation}\"; type=\"application/ld+json\"";
    }

    /// <summary>
    /// Finds the context URL among the links of a Link header value. False when there is none; more than one
    /// context link is an error (JSON-LD allows exactly one), as is a malformed header.
    /// </summary>
    public static bool TryGetContextUrl(string? header, [NotNullWhen(true)] out string? url)
    {
        url = null;
        if (string.IsNullOrWhiteSpace(header))
        {
            return false;
        }

        var position = 0;
        while (position < header.Length)
        {
            var open = header.IndexOf('<', position);
            if (open < 0)
            {
                break;
            }

            var close = header.IndexOf('>', open + 1);
            if (close < 0)
            {
                throw NgsiException.BadData("The Link header has a '<' without a matching '>'");
            }

            var target = header[(open + 1)..close].Trim();
            var end = EndOfLink(header, close + 1);
            if (HasContextRelation(header.AsSpan(close + 1, end - close - 1)))
            {
                if (url is not null)
                {
                    throw NgsiException.BadData("The request has more than one JSON-LD context Link header");
                }

                url = target;
            }

            position = end + 1;
        }

        return url is not null;
    }

    /// <summary>Where the parameters of a link end: the next comma outside a quoted string.</summary>
    private static int EndOfLink(string header, int start)
    {
        var quoted = false;
        for (var i = start; i < header.Length; i++)
        {
            switch (header[i])
            {
                case '"':
                    quoted = !quoted;
                    break;
                case ',' when !quoted:
                    return i;
            }
        }

        return header.Length;
    }

    private static bool HasContextRelation(ReadOnlySpan<char> parameters)
    {
        foreach (var range in parameters.Split(';'))
        {
            var parameter = parameters[range].Trim();
            var equals = parameter.IndexOf('=');
            if (equals < 0 || !parameter[..equals].Trim().Equals("rel", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var relations = parameter[(equals + 1)..].Trim().Trim('"');
            foreach (var relation in relations.Split(' '))
            {
                if (relations[relation].Equals(ContextRelation, StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
