using System.Globalization;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Http;

/// <summary>
/// The URL parameters of the entity endpoints (clause 6.3.x), parsed once into typed values. Unknown option
/// words and malformed numbers are BadRequestData, never silently ignored.
/// </summary>
internal sealed record RequestOptions
{
    private static readonly HashSet<string> OptionWords = new(StringComparer.Ordinal)
    {
        "keyValues", "simplified", "concise", "normalized", "sysAttrs", "noOverwrite", "replace", "update", "temporalValues", "aggregatedValues",
    };

    public Representation Format { get; init; } = Representation.Normalized;

    public bool SysAttrs { get; init; }

    public bool NoOverwrite { get; init; }

    public bool UpsertReplace { get; init; }

    public bool UpsertUpdate { get; init; }

    /// <summary>attrs= as given (short names); expand with the request's context.</summary>
    public IReadOnlyList<string>? Attrs { get; init; }

    public IReadOnlyList<string>? Ids { get; init; }

    public int? Limit { get; init; }

    public int Offset { get; init; }

    public bool Count { get; init; }

    public LanguagePreference? Lang { get; init; }

    public string? GeometryProperty { get; init; }

    /// <summary>datasetId= as a list (reads: the instances to return); "@none" names the default instance.</summary>
    public IReadOnlyList<string>? DatasetIds { get; init; }

    /// <summary>datasetId= naming one instance (attribute deletion); null for the default instance.</summary>
    public string? DatasetId => DatasetIds switch
    {
        null or ["@none"] => null,
        [var one] => one,
        _ => throw NgsiException.BadData("datasetId: one datasetId is expected here."),
    };

    /// <summary>Rejects a datasetId list (URL or Query body) with a member that is neither a URI nor "@none".</summary>
    public static void CheckDatasetIds(IReadOnlyCollection<string> datasetIds)
    {
        if (datasetIds.Count == 0 || datasetIds.Any(d => d != "@none" && !NgsiText.IsUri(d)))
        {
            throw NgsiException.BadData("datasetId must be a URI or a list of URIs (@none for the default instance).");
        }
    }

    public bool DeleteAll { get; init; }

    public bool Local { get; init; }

    private static readonly RequestOptions Defaults = new();

    /// <summary>
    /// The page size of a list or query (clause 6.3.10): limit=, or the default page cut to the maximum (only an
    /// explicit limit above Broker:MaxLimit is TooManyResults); limit=0 only asks for the count.
    /// </summary>
    public int PageLimit(BrokerOptions settings)
    {
        var limit = Limit ?? Math.Min(settings.DefaultLimit, settings.MaxLimit);
        if (limit > settings.MaxLimit)
        {
            throw new NgsiException(NgsiErrorType.TooManyResults, $"limit={limit} is above this broker's maximum page size of {settings.MaxLimit}.");
        }

        if (limit == 0 && !Count)
        {
            throw NgsiException.BadData("limit=0 is only allowed together with count=true.");
        }

        return limit;
    }

    public static RequestOptions Parse(IQueryCollection query)
    {
        if (query.Count == 0)
        {
            return Defaults;
        }

        var words = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in List(query, "options") ?? [])
        {
            if (!OptionWords.Contains(item))
            {
                throw NgsiException.BadData($"options: '{item}' is not a known option.");
            }

            words.Add(item);
        }

        var format = Representation.Normalized;
        var formatText = Single(query, "format");
        if (formatText is not null)
        {
            format = formatText switch
            {
                "keyValues" or "simplified" => Representation.KeyValues,
                "concise" => Representation.Concise,
                "normalized" => Representation.Normalized,
                _ => throw NgsiException.BadData($"format: '{formatText}' must be normalized, concise, keyValues or simplified."),
            };
        }
        else if (words.Contains("keyValues") || words.Contains("simplified"))
        {
            format = Representation.KeyValues;
        }
        else if (words.Contains("concise"))
        {
            format = Representation.Concise;
        }

        if (words.Contains("replace") && words.Contains("update"))
        {
            throw NgsiException.BadData("options: 'replace' and 'update' exclude each other.");
        }

        var datasetIds = List(query, "datasetId");
        if (datasetIds is not null)
        {
            CheckDatasetIds(datasetIds);
        }

        var ids = List(query, "id");
        if (ids is not null)
        {
            foreach (var id in ids)
            {
                if (!NgsiText.IsUri(id))
                {
                    throw NgsiException.BadData($"id: '{EntityParser.Truncate(id)}' is not a URI.");
                }
            }
        }

        return new RequestOptions
        {
            Format = format,
            SysAttrs = words.Contains("sysAttrs"),
            NoOverwrite = words.Contains("noOverwrite"),
            UpsertReplace = words.Contains("replace"),
            UpsertUpdate = words.Contains("update"),
            Attrs = Names(query, "attrs"),
            Ids = ids,
            Limit = Integer(query, "limit", 0),
            Offset = Integer(query, "offset", 0) ?? 0,
            Count = Flag(query, "count"),
            Lang = LanguagePreference.Parse(Single(query, "lang")),
            GeometryProperty = Single(query, "geometryProperty"),
            DatasetIds = datasetIds,
            DeleteAll = Flag(query, "deleteAll"),
            Local = Flag(query, "local"),
        };
    }

    /// <summary>The render settings for this request.</summary>
    public RenderOptions Render(LdContext context, string mediaType)
    {
        HashSet<string>? attrs = null;
        if (Attrs is not null)
        {
            attrs = new HashSet<string>(StringComparer.Ordinal);
            foreach (var a in Attrs)
            {
                attrs.Add(context.ExpandTerm(a));
            }
        }

        return new RenderOptions(context)
        {
            Format = Format,
            SysAttrs = SysAttrs,
            Attrs = attrs,
            Lang = Lang,
            DatasetIds = DatasetIds?.ToHashSet(StringComparer.Ordinal),
            IncludeContext = mediaType != MediaTypes.Json,
            GeometryProperty = mediaType == MediaTypes.GeoJson ? context.ExpandTerm(GeometryProperty ?? "location") : null,
        };
    }

    /// <summary>A parameter given at most once, non-empty when given; null when absent.</summary>
    public static string? Single(IQueryCollection query, string name)
    {
        if (!query.TryGetValue(name, out var values))
        {
            return null;
        }

        if (values.Count > 1)
        {
            throw NgsiException.BadData($"Parameter '{name}' is given more than once.");
        }

        var value = values[0];
        return string.IsNullOrEmpty(value) ? throw NgsiException.BadData($"Parameter '{name}' is empty.") : value;
    }

    public static string[]? List(IQueryCollection query, string name)
    {
        var text = Single(query, name);
        if (text is null)
        {
            return null;
        }

        var items = text.Split(',', StringSplitOptions.TrimEntries);
        return Array.Exists(items, i => i.Length == 0) ? throw NgsiException.BadData($"Parameter '{name}' has an empty item.") : items;
    }

    public static string[]? Names(IQueryCollection query, string name)
    {
        var items = List(query, name);
        if (items is null)
        {
            return null;
        }

        foreach (var item in items)
        {
            if (!NgsiText.IsName(item))
            {
                throw NgsiException.BadData($"{name}: '{EntityParser.Truncate(item)}' is not a valid name.");
            }
        }

        return items;
    }

    private static int? Integer(IQueryCollection query, string name, int min)
    {
        var text = Single(query, name);
        if (text is null)
        {
            return null;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min
            ? value
            : throw NgsiException.BadData($"Parameter '{name}' must be a whole number ≥ {min}.");
    }

    /// <summary>A true/false parameter; absent is false.</summary>
    public static bool Flag(IQueryCollection query, string name) => Single(query, name) switch
    {
        null => false,
        "true" => true,
        "false" => false,
        var other => throw NgsiException.BadData($"Parameter '{name}' must be true or false, not '{EntityParser.Truncate(other)}'."),
    };
}
