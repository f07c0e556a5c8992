using System.Text.Json;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.JsonLd;

/// <summary>Where the processor gets the @context of a remote (URL) context reference from.</summary>
internal interface IRemoteContextSource
{
    /// <summary>The @context member of the document at <paramref name="url"/>; failures throw NgsiException.</summary>
    ValueTask<RemoteContext> DereferenceAsync(string url, CancellationToken cancellationToken);
}

/// <param name="Context">The remote document's @context value.</param>
/// <param name="Usage">Hit counter of the registry entry that served it, if any.</param>
internal readonly record struct RemoteContext(JsonElement Context, ContextUsage? Usage);

/// <summary>The terms a client's @context defined, and the registry entries it was built from.</summary>
internal sealed record ProcessedContext(LdTermTable Terms, ContextUsage[] Usages);

/// <summary>
/// The JSON-LD 1.1 context processing rules (W3C JSON-LD 1.1 Processing Algorithms §4.1–4.2), restricted to what
/// NGSI-LD needs: building term definitions to expand and compact terms. Not implemented on purpose: @base and
/// relative IRIs (NGSI-LD names are terms or absolute IRIs), scoped contexts (a term's own @context is accepted
/// and ignored, since only top-level terms are expanded) and @reverse (rejected: NGSI-LD has no reverse
/// properties). Every core context URL is recognised and skipped: the core context is applied after the client's
/// contexts anyway. Any invalid input ends in an NgsiException, never in another exception.
/// </summary>
internal static class LdContextProcessor
{
    /// <summary>How deep remote contexts may reference further remote contexts; a cycle hits this.</summary>
    public const int MaxRemoteDepth = 8;

    /// <summary>How many remote contexts one @context may pull in overall.</summary>
    public const int MaxRemoteReferences = 64;

    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "@base", "@container", "@context", "@direction", "@graph", "@id", "@import", "@included", "@index",
        "@json", "@language", "@list", "@nest", "@none", "@prefix", "@propagate", "@protected", "@reverse",
        "@set", "@type", "@value", "@version", "@vocab",
    };

    private static readonly Dictionary<string, LdContainer> Containers = new(StringComparer.Ordinal)
    {
        ["@list"] = LdContainer.List,
        ["@set"] = LdContainer.Set,
        ["@index"] = LdContainer.Index,
        ["@language"] = LdContainer.Language,
        ["@id"] = LdContainer.Id,
        ["@type"] = LdContainer.Type,
        ["@graph"] = LdContainer.Graph,
    };

    /// <summary>Processes a client's @context (string URL, object, array or null) on top of the core context.</summary>
    public static async ValueTask<ProcessedContext> ProcessAsync(
        JsonElement context,
        IRemoteContextSource remote,
        CancellationToken cancellationToken)
    {
        var state = new ActiveContext(remote, CoreContext.Terms);
        await ProcessValueAsync(context, state, depth: 0, source: null, cancellationToken);
        return new ProcessedContext(LdTermTable.Build(state.Terms, state.Vocab), [.. state.Usages]);
    }

    /// <summary>Processes one local context object with no remote references and nothing beneath it.</summary>
    public static LdTermTable ProcessStandalone(JsonElement localContext)
    {
        var state = new ActiveContext(remote: null, fallback: null);
        ProcessLocal(ToMembers(localContext, source: null), state, source: null);
        return LdTermTable.Build(state.Terms, state.Vocab);
    }

    public static bool IsKeyword(string value) => Keywords.Contains(value);

    /// <summary>JSON-LD reserves "@" followed by letters; such unknown keywords are ignored, not treated as terms.</summary>
    public static bool LooksLikeKeyword(string value)
    {
        if (value.Length < 2 || value[0] != '@')
        {
            return false;
        }

        foreach (var c in value.AsSpan(1))
        {
            if (!char.IsAsciiLetter(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The gen-delims of RFC 3986: an IRI ending in one of them can serve as a prefix.</summary>
    public static bool EndsWithGenDelim(string iri) =>
        iri.Length > 0 && iri[^1] is ':' or '/' or '?' or '#' or '[' or ']' or '@';

    /// <summary>Only absolute http(s) URLs can be dereferenced: there is no base IRI to resolve anything else.</summary>
    public static Uri ParseRemoteUrl(string reference, string? source)
    {
        if (!Uri.TryCreate(reference, UriKind.Absolute, out var url)
            || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            throw Invalid(
                $"The @context reference '{reference}' is not an absolute http(s) URL; "
                + "relative and non-http references cannot be resolved",
                source);
        }

        return url;
    }

    private static async ValueTask ProcessValueAsync(
        JsonElement context,
        ActiveContext state,
        int depth,
        string? source,
        CancellationToken cancellationToken)
    {
        switch (context.ValueKind)
        {
            case JsonValueKind.Null:
                // A null context throws away everything defined so far: what remains is the core context.
                state.Reset();
                break;
            case JsonValueKind.String:
                await ProcessReferenceAsync(context.GetString()!, state, depth, source, cancellationToken);
                break;
            case JsonValueKind.Object:
                var members = ToMembers(context, source);
                await ImportAsync(members, state, depth, source, cancellationToken);
                ProcessLocal(members, state, source);
                break;
            case JsonValueKind.Array:
                foreach (var item in context.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Array)
                    {
                        throw Invalid("An @context array must not contain another array", source);
                    }

                    await ProcessValueAsync(item, state, depth, source, cancellationToken);
                }

                break;
            default:
                throw Invalid(
                    $"An @context must be a URL string, an object, an array or null, not {JsonKinds.Describe(context)}",
                    source);
        }
    }

    private static async ValueTask ProcessReferenceAsync(
        string reference,
        ActiveContext state,
        int depth,
        string? source,
        CancellationToken cancellationToken)
    {
        if (CoreContext.IsCoreUrl(reference))
        {
            return;
        }

        var remote = await DereferenceAsync(reference, state, depth, source, cancellationToken);
        await ProcessValueAsync(remote, state, depth + 1, reference, cancellationToken);
    }

    private static async ValueTask<JsonElement> DereferenceAsync(
        string reference,
        ActiveContext state,
        int depth,
        string? source,
        CancellationToken cancellationToken)
    {
        ParseRemoteUrl(reference, source);
        if (state.Remote is null)
        {
            throw Invalid($"The @context reference '{reference}' cannot be followed here", source);
        }

        if (depth >= MaxRemoteDepth)
        {
            throw Invalid(
                $"Remote @context references nest deeper than {MaxRemoteDepth} levels at '{reference}' "
                + "(do two contexts reference each other?)",
                source);
        }

        if (++state.RemoteReferences > MaxRemoteReferences)
        {
            throw Invalid($"The @context references more than {MaxRemoteReferences} remote contexts", source);
        }

        var remote = await state.Remote.DereferenceAsync(reference, cancellationToken);
        if (remote.Usage is not null)
        {
            state.Usages.Add(remote.Usage);
        }

        return remote.Context;
    }

    /// <summary>@import (JSON-LD 1.1): the imported context's entries apply unless the importing context has its own.</summary>
    private static async ValueTask ImportAsync(
        Dictionary<string, JsonElement> members,
        ActiveContext state,
        int depth,
        string? source,
        CancellationToken cancellationToken)
    {
        if (!members.Remove("@import", out var import))
        {
            return;
        }

        if (import.ValueKind != JsonValueKind.String)
        {
            throw Invalid($"@import must be a URL string, not {JsonKinds.Describe(import)}", source);
        }

        var reference = import.GetString()!;
        var imported = CoreContext.IsCoreUrl(reference)
            ? CoreContext.LocalContext
            : await DereferenceAsync(reference, state, depth, source, cancellationToken);
        if (imported.ValueKind != JsonValueKind.Object)
        {
            throw Invalid($"The context imported from '{reference}' must be a single object", source);
        }

        foreach (var member in imported.EnumerateObject())
        {
            if (member.Name == "@import")
            {
                throw Invalid($"The context imported from '{reference}' must not itself use @import", source);
            }

            members.TryAdd(member.Name, member.Value);
        }
    }

    private static Dictionary<string, JsonElement> ToMembers(JsonElement localContext, string? source)
    {
        if (localContext.ValueKind != JsonValueKind.Object)
        {
            throw Invalid($"A local @context must be an object, not {JsonKinds.Describe(localContext)}", source);
        }

        var members = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var member in localContext.EnumerateObject())
        {
            members[member.Name] = member.Value;
        }

        return members;
    }

    private static void ProcessLocal(Dictionary<string, JsonElement> members, ActiveContext state, string? source)
    {
        var local = new LocalContext(members, state, source);
        local.ProcessContextKeywords();
        foreach (var term in members.Keys)
        {
            if (!IsContextKeyword(term))
            {
                local.Define(term);
            }
        }
    }

    private static bool IsContextKeyword(string key) =>
        key is "@base" or "@direction" or "@import" or "@language" or "@propagate" or "@protected" or "@version"
            or "@vocab";

    private static NgsiException Invalid(string detail, string? source) =>
        NgsiException.BadData(source is null ? detail : $"{detail} (in the @context at '{source}')");


    /// <summary>The context being built: everything defined so far over the core context it falls back to.</summary>
    private sealed class ActiveContext(IRemoteContextSource? remote, LdTermTable? fallback)
    {
        public IRemoteContextSource? Remote { get; } = remote;

        public Dictionary<string, LdTermDefinition> Terms { get; } = new(StringComparer.Ordinal);

        public string? Vocab { get; set; }

        public List<ContextUsage> Usages { get; } = [];

        public int RemoteReferences { get; set; }

        /// <summary>A client's definitions may use core terms and prefixes (<c>ngsi-ld:</c>, <c>DateTime</c>).</summary>
        public string? EffectiveVocab => Vocab ?? fallback?.Vocab;

        public bool TryGetTerm(string term, out LdTermDefinition definition) =>
            Terms.TryGetValue(term, out definition!)
            || (fallback is not null && fallback.Terms.TryGetValue(term, out definition!));

        public void Reset()
        {
            Terms.Clear();
            Vocab = null;
        }
    }

    /// <summary>
    /// One local context object being applied: JSON-LD's "create term definition" with its <c>defined</c> map, so
    /// terms may use prefixes and terms defined later in the same object, and cycles are caught.
    /// </summary>
    private sealed class LocalContext(Dictionary<string, JsonElement> members, ActiveContext state, string? source)
    {
        private readonly Dictionary<string, bool> _defined = new(StringComparer.Ordinal);
        private bool _defaultProtected;

        public void ProcessContextKeywords()
        {
            if (members.TryGetValue("@version", out var version)
                && !(version.ValueKind == JsonValueKind.Number && version.TryGetDouble(out var v) && v == 1.1))
            {
                throw Invalid("@version must be the number 1.1", source);
            }

            if (members.TryGetValue("@protected", out var isProtected))
            {
                _defaultProtected = ReadBoolean(isProtected, "@protected");
            }

            if (members.TryGetValue("@propagate", out var propagate))
            {
                ReadBoolean(propagate, "@propagate");
            }

            if (members.TryGetValue("@vocab", out var vocab))
            {
                state.Vocab = vocab.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.String => ExpandVocab(vocab.GetString()!),
                    _ => throw Invalid($"@vocab must be an IRI string or null, not {JsonKinds.Describe(vocab)}", source),
                };
            }
        }

        public void Define(string term)
        {
            if (_defined.TryGetValue(term, out var done))
            {
                if (done)
                {
                    return;
                }

                throw Invalid($"The definition of the term '{term}' depends on itself (cyclic IRI mapping)", source);
            }

            var value = members[term];
            if (term.Length == 0)
            {
                throw Invalid("A term must not be the empty string", source);
            }

            if (IsKeyword(term))
            {
                if (term == "@type" && IsTypeContainerDeclaration(value))
                {
                    _defined[term] = true;
                    return;
                }

                throw Invalid($"The keyword '{term}' cannot be redefined", source);
            }

            if (LooksLikeKeyword(term))
            {
                // Reserved for future JSON-LD keywords: processors ignore such terms.
                _defined[term] = true;
                return;
            }

            _defined[term] = false;
            var definition = CreateDefinition(term, value);
            if (state.Terms.TryGetValue(term, out var previous) && previous.IsProtected)
            {
                if (definition is null || !definition.SameMeaningAs(previous))
                {
                    throw Invalid(
                        $"The term '{term}' is protected by an earlier @context and cannot be given another meaning",
                        source);
                }
            }
            else if (definition is null)
            {
                state.Terms.Remove(term);
            }
            else
            {
                state.Terms[term] = definition;
            }

            _defined[term] = true;
        }

        /// <summary>Builds the definition of <paramref name="term"/>; null when the context maps it to null.</summary>
        private LdTermDefinition? CreateDefinition(string term, JsonElement value)
        {
            string? id;
            var hasId = true;
            string? typeMapping = null;
            var container = LdContainer.None;
            var isProtected = _defaultProtected;
            bool? prefix = null;

            switch (value.ValueKind)
            {
                case JsonValueKind.Null:
                    return null;
                case JsonValueKind.String:
                    id = value.GetString();
                    break;
                case JsonValueKind.Object:
                    hasId = value.TryGetProperty("@id", out var idElement);
                    id = null;
                    if (hasId)
                    {
                        id = idElement.ValueKind switch
                        {
                            JsonValueKind.Null => null,
                            JsonValueKind.String => idElement.GetString(),
                            _ => throw Invalid($"The @id of the term '{term}' must be a string", source),
                        };
                        if (id is null)
                        {
                            return null;
                        }
                    }

                    foreach (var member in value.EnumerateObject())
                    {
                        switch (member.Name)
                        {
                            case "@id":
                                break;
                            case "@reverse":
                                throw Invalid(
                                    $"The term '{term}' uses @reverse, which NGSI-LD does not support", source);
                            case "@type":
                                typeMapping = ReadTypeMapping(term, member.Value);
                                break;
                            case "@container":
                                container = ReadContainer(term, member.Value);
                                break;
                            case "@protected":
                                isProtected = ReadBoolean(member.Value, "@protected");
                                break;
                            case "@prefix":
                                prefix = ReadBoolean(member.Value, "@prefix");
                                break;
                            case "@context" or "@language" or "@direction" or "@index" or "@nest":
                                // Scoped contexts and value-level settings do not change what the term expands to.
                                break;
                            default:
                                throw Invalid(
                                    $"The definition of the term '{term}' has an unknown member '{member.Name}'",
                                    source);
                        }
                    }

                    break;
                default:
                    throw Invalid(
                        $"The term '{term}' must map to an IRI string, an object or null, not {JsonKinds.Describe(value)}",
                        source);
            }

            var iri = hasId ? MapId(term, id!) : MapWithoutId(term);
            var isCompactOrAbsolute = IsCompactOrAbsolute(term);
            if (prefix == true && (isCompactOrAbsolute || term.Contains('/', StringComparison.Ordinal)))
            {
                throw Invalid($"The term '{term}' cannot be a prefix: it contains ':' or '/'", source);
            }

            var isPrefix = prefix ?? (!isCompactOrAbsolute
                && !term.Contains('/', StringComparison.Ordinal)
                && !iri.StartsWith('@')
                && EndsWithGenDelim(iri));
            return new LdTermDefinition(iri, typeMapping, container, isProtected, isPrefix);
        }

        private string MapId(string term, string id)
        {
            if (IsKeyword(id))
            {
                if (id == "@context")
                {
                    throw Invalid($"The term '{term}' cannot be an alias of @context", source);
                }

                return id;
            }

            if (LooksLikeKeyword(id))
            {
                throw Invalid($"The term '{term}' maps to '{id}', which is not a JSON-LD keyword", source);
            }

            var iri = Expand(id, vocab: true);
            if (!IsAbsoluteIri(iri))
            {
                throw Invalid($"The term '{term}' maps to '{id}', which does not expand to an absolute IRI", source);
            }

            // A term that itself looks like a compact or absolute IRI must mean what it says.
            if (IsCompactOrAbsolute(term) && Expand(term, vocab: false) != iri)
            {
                throw Invalid(
                    $"The term '{term}' looks like an IRI but is mapped to the different IRI '{iri}'", source);
            }

            return iri;
        }

        private string MapWithoutId(string term)
        {
            if (IsCompactOrAbsolute(term))
            {
                return Expand(term, vocab: false);
            }

            return state.EffectiveVocab is { } vocab
                ? vocab + term
                : throw Invalid($"The term '{term}' has no @id and there is no @vocab to derive one from", source);
        }

        private string ExpandVocab(string value)
        {
            var iri = value.Length == 0 ? value : Expand(value, vocab: true);
            if (!IsAbsoluteIri(iri) || iri.StartsWith("_:", StringComparison.Ordinal))
            {
                throw Invalid($"@vocab must be an absolute IRI, not '{value}'", source);
            }

            return iri;
        }

        private string ReadTypeMapping(string term, JsonElement value)
        {
            if (value.ValueKind != JsonValueKind.String)
            {
                throw Invalid($"The @type of the term '{term}' must be a string", source);
            }

            var type = value.GetString()!;
            if (type is "@id" or "@vocab" or "@json" or "@none")
            {
                return type;
            }

            var iri = type.StartsWith('@') ? type : Expand(type, vocab: true);
            if (!IsAbsoluteIri(iri))
            {
                throw Invalid($"The @type '{type}' of the term '{term}' is not a keyword or an absolute IRI", source);
            }

            return iri;
        }

        private LdContainer ReadContainer(string term, JsonElement value)
        {
            switch (value.ValueKind)
            {
                case JsonValueKind.Null:
                    return LdContainer.None;
                case JsonValueKind.String:
                    return ReadContainerKeyword(term, value.GetString()!);
                case JsonValueKind.Array:
                    var container = LdContainer.None;
                    foreach (var item in value.EnumerateArray())
                    {
                        container |= item.ValueKind == JsonValueKind.String
                            ? ReadContainerKeyword(term, item.GetString()!)
                            : throw Invalid($"The @container of the term '{term}' must hold strings only", source);
                    }

                    return container;
                default:
                    throw Invalid($"The @container of the term '{term}' must be a string or an array", source);
            }
        }

        private LdContainer ReadContainerKeyword(string term, string keyword) =>
            Containers.TryGetValue(keyword, out var container)
                ? container
                : throw Invalid($"'{keyword}' is not a valid @container for the term '{term}'", source);

        private bool ReadBoolean(JsonElement value, string keyword) => value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Invalid($"{keyword} must be true or false", source),
        };

        /// <summary>IRI expansion while defining terms: terms of this object are defined first when referenced.</summary>
        private string Expand(string value, bool vocab)
        {
            if (IsKeyword(value) || LooksLikeKeyword(value))
            {
                return value;
            }

            if (vocab)
            {
                DefineIfLocal(value);
                if (state.TryGetTerm(value, out var definition))
                {
                    return definition.Iri;
                }
            }

            var colon = value.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                var prefix = value[..colon];
                var suffix = value[(colon + 1)..];
                if (prefix == "_" || suffix.StartsWith("//", StringComparison.Ordinal))
                {
                    return value;
                }

                DefineIfLocal(prefix);
                return state.TryGetTerm(prefix, out var prefixDefinition) && prefixDefinition.IsPrefix
                    ? prefixDefinition.Iri + suffix
                    : value;
            }

            return colon < 0 && vocab && state.EffectiveVocab is { } vocabIri ? vocabIri + value : value;
        }

        private void DefineIfLocal(string term)
        {
            if (members.ContainsKey(term) && !IsContextKeyword(term))
            {
                Define(term);
            }
        }

        private static bool IsTypeContainerDeclaration(JsonElement value) =>
            value.ValueKind == JsonValueKind.Object
            && value.EnumerateObject().All(m => m.Name is "@container" or "@protected")
            && value.TryGetProperty("@container", out var container)
            && container.ValueKind == JsonValueKind.String
            && container.GetString() == "@set";

        private static bool IsCompactOrAbsolute(string term)
        {
            var colon = term.IndexOf(':', StringComparison.Ordinal);
            return colon > 0 && colon < term.Length - 1;
        }

        private static bool IsAbsoluteIri(string iri) => iri.IndexOf(':', StringComparison.Ordinal) > 0;
    }
}
