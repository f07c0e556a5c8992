using System.Text.Json.Nodes;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// A processed JSON-LD @context (the "active context" of a request): maps the short names a client uses
/// (attribute names, entity types, vocab values) to IRIs and back. The NGSI-LD core context is always applied
/// last and cannot be overridden. Instances are immutable and cached; ExpandTerm/CompactIri are hot paths.
/// </summary>
public sealed class LdContext
{
    // STUB: replaced by the JSON-LD work (term definitions, prefixes, @vocab, core context).
    private readonly string _vocab = "https://uri.etsi.org/ngsi-ld/default-context/";

    private LdContext(JsonNode? value) => Value = value;

    /// <summary>The core context alone (requests with no user context).</summary>
    public static LdContext Core { get; } = new(null);

    /// <summary>The @context as the client gave it (string URL, object or array); null for the core context alone.
    /// Responses echo it back in "@context" or in the Link header.</summary>
    public JsonNode? Value { get; }

    /// <summary>True when the client gave no context of its own.</summary>
    public bool IsCore => Value is null;

    /// <summary>Expands a term (attribute name, entity type, vocab value) to an IRI.</summary>
    public string ExpandTerm(string term) =>
        term.Contains(':', StringComparison.Ordinal) ? term : _vocab + term;

    /// <summary>Compacts an IRI back to the shortest term or compact IRI this context allows.</summary>
    public string CompactIri(string iri) =>
        iri.StartsWith(_vocab, StringComparison.Ordinal) ? iri[_vocab.Length..] : iri;
}
