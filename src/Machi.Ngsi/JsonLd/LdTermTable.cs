using System.Collections.Frozen;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// The term definitions of one processed context layer (the core context, or everything a client's contexts
/// defined), indexed both ways: term → definition for expansion, IRI → term and prefixes for compaction.
/// </summary>
internal sealed class LdTermTable
{
    public static readonly LdTermTable Empty = Build(new Dictionary<string, LdTermDefinition>(), vocab: null);

    private LdTermTable(
        FrozenDictionary<string, LdTermDefinition> terms,
        string? vocab,
        FrozenDictionary<string, string> termByIri,
        (string Term, string Iri)[] prefixes)
    {
        Terms = terms;
        Vocab = vocab;
        TermByIri = termByIri;
        Prefixes = prefixes;
    }

    public FrozenDictionary<string, LdTermDefinition> Terms { get; }

    /// <summary>The @vocab this layer set, or null when it set none.</summary>
    public string? Vocab { get; }

    /// <summary>For each IRI, the term compaction picks: the shortest, then the ordinally first.</summary>
    public FrozenDictionary<string, string> TermByIri { get; }

    /// <summary>Terms usable as compact IRI prefixes, longest IRI first.</summary>
    public (string Term, string Iri)[] Prefixes { get; }

    public int Count => Terms.Count;

    public static LdTermTable Build(IReadOnlyDictionary<string, LdTermDefinition> terms, string? vocab)
    {
        var termByIri = new Dictionary<string, string>(StringComparer.Ordinal);
        var prefixes = new List<(string Term, string Iri)>();
        foreach (var (term, definition) in terms)
        {
            if (!termByIri.TryGetValue(definition.Iri, out var chosen) || IsPreferred(term, chosen))
            {
                termByIri[definition.Iri] = term;
            }

            if (definition.IsPrefix)
            {
                prefixes.Add((term, definition.Iri));
            }
        }

        var sortedPrefixes = prefixes.ToArray();
        SortPrefixes(sortedPrefixes);
        return new LdTermTable(
            terms.ToFrozenDictionary(StringComparer.Ordinal),
            vocab,
            termByIri.ToFrozenDictionary(StringComparer.Ordinal),
            sortedPrefixes);
    }

    /// <summary>Longest prefix IRI first so compaction finds the longest match; ties go to the shortest term.</summary>
    public static void SortPrefixes((string Term, string Iri)[] prefixes) =>
        Array.Sort(prefixes, static (a, b) =>
        {
            var byIri = b.Iri.Length.CompareTo(a.Iri.Length);
            if (byIri != 0)
            {
                return byIri;
            }

            return IsPreferred(a.Term, b.Term) ? -1 : IsPreferred(b.Term, a.Term) ? 1 : 0;
        });

    private static bool IsPreferred(string candidate, string current) =>
        candidate.Length < current.Length
        || (candidate.Length == current.Length && string.CompareOrdinal(candidate, current) < 0);
}
