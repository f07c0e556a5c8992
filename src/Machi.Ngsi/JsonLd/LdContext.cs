using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// A processed JSON-LD @context (the "active context" of a request): maps the short names a client uses
/// (attribute names, entity types, vocab values) to IRIs and back. The NGSI-LD core context is always applied
/// last and cannot be overridden. Instances are immutable and cached; ExpandTerm/CompactIri are hot paths.
/// Get instances from <see cref="IContextResolver"/>.
/// </summary>
public sealed class LdContext
{
    /// <summary>The core context URL the broker gives in responses (Link header, "@context").</summary>
    public const string CoreContextUrl = CoreContext.Url;

    /// <summary>The core context's @vocab: terms no context defines expand beneath it.</summary>
    public const string DefaultVocab = CoreContext.DefaultVocab;

    // Caches fill with the attribute names and IRIs of every entity read; the cap keeps a client that sends
    // endless distinct names from growing them without bound (past it, results are computed each time).
    private const int MaxCachedNames = 10_000;

    private readonly LdTermTable _user;
    private readonly LdTermTable _core;
    private readonly (string Term, string Iri)[] _prefixes;
    private readonly JsonElement? _value;
    private readonly ConcurrentDictionary<string, string> _expanded = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _compacted = new(StringComparer.Ordinal);
    private int _cachedNames;

    private LdContext()
        : this(LdTermTable.Empty, value: null, [])
    {
    }

    internal LdContext(LdTermTable userTerms, JsonElement? value, ContextUsage[] usages)
    {
        _core = CoreContext.Terms;
        _user = WithoutCoreTerms(userTerms, _core);
        _value = value;
        ValueJson = value?.GetRawText();
        Usages = usages;
        Vocab = _user.Vocab ?? _core.Vocab ?? DefaultVocab;
        _prefixes = [.. _core.Prefixes, .. _user.Prefixes];
        LdTermTable.SortPrefixes(_prefixes);
    }

    /// <summary>The core context alone (requests with no user context).</summary>
    public static LdContext Core { get; } = new();

    /// <summary>
    /// The @context as the client gave it (string URL, object or array); null for the core context alone.
    /// Responses echo it back in "@context" or in the Link header. Each call returns a fresh copy, so it can be
    /// attached to a response document; <see cref="ValueJson"/> avoids the copy when writing with a Utf8JsonWriter.
    /// </summary>
    public JsonNode? Value => _value is { } value ? JsonNode.Parse(value.GetRawText()) : null;

    /// <summary>The @context as the client gave it, as JSON text (for <c>Utf8JsonWriter.WriteRawValue</c>).</summary>
    public string? ValueJson { get; }

    /// <summary>True when the client gave no context of its own.</summary>
    public bool IsCore => _value is null;

    /// <summary>The @vocab terms without a definition expand beneath: the client's own, else the core one.</summary>
    // The core context is applied after the client's, so strict JSON-LD would let the core @vocab win; keeping
    // the client's @vocab is what a client that sets one means, and core terms stay protected either way.
    public string Vocab { get; }

    /// <summary>The registry entries this context was built from, touched on every use.</summary>
    internal ContextUsage[] Usages { get; }

    /// <summary>The one URL a Link header can carry for this context, when there is one.</summary>
    internal string? SingleUrl
    {
        get
        {
            if (_value is not { } value)
            {
                return null;
            }

            if (value.ValueKind == JsonValueKind.String)
            {
                return value.GetString();
            }

            if (value.ValueKind != JsonValueKind.Array)
            {
                return null;
            }

            string? url = null;
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.String && CoreContext.IsCoreUrl(item.GetString()!))
                {
                    continue;
                }

                if (url is not null || item.ValueKind != JsonValueKind.String)
                {
                    return null;
                }

                url = item.GetString();
            }

            return url;
        }
    }

    /// <summary>True for every version of the core context URL, which never needs fetching.</summary>
    public static bool IsCoreContextUrl(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        return CoreContext.IsCoreUrl(url);
    }

    /// <summary>
    /// Expands a term (attribute name, entity type, vocab value) to an IRI: a defined term gives its IRI, a compact
    /// IRI <c>prefix:suffix</c> with a known prefix is expanded, any other IRI stays as it is, and every other name
    /// goes beneath <see cref="Vocab"/>.
    /// </summary>
    public string ExpandTerm(string term)
    {
        ArgumentNullException.ThrowIfNull(term);
        return _expanded.TryGetValue(term, out var iri) ? iri : Remember(_expanded, term, Expand(term));
    }

    /// <summary>
    /// Compacts an IRI back to the shortest term or compact IRI this context allows: a term defined for it (a core
    /// term first), else the name beneath <see cref="Vocab"/>, else a compact IRI with the longest matching prefix,
    /// else the IRI itself.
    /// </summary>
    public string CompactIri(string iri)
    {
        ArgumentNullException.ThrowIfNull(iri);
        return _compacted.TryGetValue(iri, out var term) ? term : Remember(_compacted, iri, Compact(iri));
    }

    /// <summary>The definition of a term, from the core context or the client's.</summary>
    public bool TryGetTermDefinition(string term, [NotNullWhen(true)] out LdTermDefinition? definition)
    {
        ArgumentNullException.ThrowIfNull(term);
        if (_core.Terms.TryGetValue(term, out definition) || _user.Terms.TryGetValue(term, out definition))
        {
            return true;
        }

        definition = null;
        return false;
    }

    /// <summary>True when the term's string values are vocabulary terms (<c>"@type": "@vocab"</c>).</summary>
    public bool IsVocabTerm(string term) => TryGetTermDefinition(term, out var definition) && definition.IsVocab;

    private string Expand(string term)
    {
        if (term.Length == 0 || LdContextProcessor.LooksLikeKeyword(term))
        {
            return term;
        }

        if (TryGetTermDefinition(term, out var definition))
        {
            return definition.Iri;
        }

        var colon = term.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            return Vocab + term;
        }

        var suffix = term.AsSpan(colon + 1);
        if (colon == 0 || suffix.StartsWith("//", StringComparison.Ordinal))
        {
            return term;
        }

        var prefix = term[..colon];
        return TryGetTermDefinition(prefix, out var prefixDefinition) && prefixDefinition.IsPrefix
            ? string.Concat(prefixDefinition.Iri, suffix)
            : term;
    }

    private string Compact(string iri)
    {
        if (_core.TermByIri.TryGetValue(iri, out var term) || _user.TermByIri.TryGetValue(iri, out term))
        {
            return term;
        }

        if (iri.Length > Vocab.Length && iri.StartsWith(Vocab, StringComparison.Ordinal))
        {
            var name = iri[Vocab.Length..];
            if (!name.Contains(':', StringComparison.Ordinal) && !name.StartsWith('@') && !IsDefined(name))
            {
                return name;
            }
        }

        foreach (var (prefix, prefixIri) in _prefixes)
        {
            if (iri.Length <= prefixIri.Length || !iri.StartsWith(prefixIri, StringComparison.Ordinal))
            {
                continue;
            }

            var suffix = iri.AsSpan(prefixIri.Length);
            if (suffix.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }

            var compactIri = string.Concat(prefix, ":", suffix);
            if (!IsDefined(compactIri))
            {
                return compactIri;
            }
        }

        return iri;
    }

    private bool IsDefined(string term) => _core.Terms.ContainsKey(term) || _user.Terms.ContainsKey(term);

    /// <summary>Memoises a name mapping (at most <see cref="MaxCachedNames"/> are kept) and returns its value.</summary>
    private string Remember(ConcurrentDictionary<string, string> cache, string key, string value)
    {
        if (Volatile.Read(ref _cachedNames) < MaxCachedNames && cache.TryAdd(key, value))
        {
            Interlocked.Increment(ref _cachedNames);
        }

        return value;
    }

    private static LdTermTable WithoutCoreTerms(LdTermTable user, LdTermTable core)
    {
        if (user.Count == 0 || !user.Terms.Keys.Any(core.Terms.ContainsKey))
        {
            return user;
        }

        var kept = user.Terms.Where(t => !core.Terms.ContainsKey(t.Key)).ToDictionary(StringComparer.Ordinal);
        return LdTermTable.Build(kept, user.Vocab);
    }
}
