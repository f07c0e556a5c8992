namespace Machi.Ngsi.JsonLd;

/// <summary>What a term of a JSON-LD @context means: the IRI it stands for and how its values are read.</summary>
/// <param name="Iri">The expanded IRI, or a keyword such as <c>@type</c> when the term is a keyword alias.</param>
/// <param name="TypeMapping"><c>@id</c>, <c>@vocab</c>, <c>@json</c>, <c>@none</c>, an expanded datatype IRI, or null.</param>
/// <param name="Container">The <c>@container</c> of the term.</param>
/// <param name="IsProtected">Set by <c>@protected</c>: a later context may not give the term another meaning.</param>
/// <param name="IsPrefix">The term may be used as the prefix of a compact IRI (<c>term:suffix</c>).</param>
public sealed record LdTermDefinition(
    string Iri,
    string? TypeMapping,
    LdContainer Container,
    bool IsProtected,
    bool IsPrefix)
{
    /// <summary>True when the term stands for a JSON-LD keyword (as <c>type</c> does for <c>@type</c>).</summary>
    public bool IsKeywordAlias => Iri.StartsWith('@');

    /// <summary>True when string values of the term are vocabulary terms to expand (<c>"@type": "@vocab"</c>).</summary>
    public bool IsVocab => TypeMapping == "@vocab";

    internal bool SameMeaningAs(LdTermDefinition other) =>
        Iri == other.Iri && TypeMapping == other.TypeMapping && Container == other.Container && IsPrefix == other.IsPrefix;
}

/// <summary>The JSON-LD <c>@container</c> values a term may declare.</summary>
[Flags]
public enum LdContainer
{
    None = 0,
    List = 1,
    Set = 2,
    Index = 4,
    Language = 8,
    Id = 16,
    Type = 32,
    Graph = 64,
}
