using System.Text;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.Query;

/// <summary>
/// An entity type selection (clause 4.17): type names joined by '|' or ',' (OR) and ';' (AND, binding tighter),
/// grouped with parentheses, e.g. "Vehicle,Bus" or "(Shelter;Hospital)|Park". An entity matches a name when the
/// name is one of its types (an entity can have several, clause 4.16). <see cref="ToString"/> prints the
/// canonical text, with '|' for OR, which parses back to the same expression.
/// </summary>
public abstract record TypeExpression
{
    /// <summary>
    /// The names when the expression is one name or an OR of names ("A,B", "A|B"), so that a store can look them
    /// up in an index; null when it has an AND.
    /// </summary>
    public abstract IReadOnlyList<string>? SimpleTypes { get; }

    /// <summary>Every name the expression mentions: an entity with none of them cannot match (there is no NOT).</summary>
    public IEnumerable<string> Names => this switch
    {
        TypeName name => [name.Name],
        TypeLogical logical => logical.Terms.SelectMany(t => t.Names),
        _ => [],
    };

    public abstract bool Matches(IReadOnlyCollection<string> entityTypes);

    /// <summary>The same expression with every type name expanded to an IRI.</summary>
    public abstract TypeExpression Expand(Func<string, string> expandTerm);

    internal abstract void Print(StringBuilder text, int parentPrecedence);

    public sealed override string ToString()
    {
        var text = new StringBuilder();
        Print(text, 0);
        return text.ToString();
    }

    /// <exception cref="NgsiException">BadRequestData naming the position of the fault.</exception>
    public static TypeExpression Parse(string text) =>
        LogicalGrammar.Parse<TypeExpression>(text, "type", "type selection", "a type name", ParseName, (isAnd, terms) => new TypeLogical(isAnd, terms));

    private static TypeName ParseName(LogicalGrammar.Cursor c)
    {
        var start = c.Position;
        while (!c.AtEnd && IsNameChar(c.Current))
        {
            c.Position++;
        }

        if (c.Position == start)
        {
            throw c.Fail("a type name expected");
        }

        return new TypeName(c.Text[start..c.Position]);
    }

    /// <summary>What a type name or IRI may hold (clause 4.6.2 names, plus the characters of IRIs).</summary>
    private static bool IsNameChar(char c) =>
        c > ' ' && c != 0x7f && c is not ('(' or ')' or ';' or '|' or ',' or '"' or '\'' or '<' or '>' or '=' or '\\' or '^' or '`' or '{' or '}' or '[' or ']');
}

/// <summary>One type name (or IRI once expanded).</summary>
public sealed record TypeName(string Name) : TypeExpression
{
    public override IReadOnlyList<string>? SimpleTypes => [Name];

    public override bool Matches(IReadOnlyCollection<string> entityTypes)
    {
        ArgumentNullException.ThrowIfNull(entityTypes);
        return entityTypes.Contains(Name);
    }

    public override TypeExpression Expand(Func<string, string> expandTerm)
    {
        ArgumentNullException.ThrowIfNull(expandTerm);
        return new TypeName(expandTerm(Name));
    }

    internal override void Print(StringBuilder text, int parentPrecedence) => text.Append(Name);
}

/// <summary>Terms joined by ';' (AND) or '|' / ',' (OR).</summary>
public sealed record TypeLogical(bool IsAnd, IReadOnlyList<TypeExpression> Terms) : TypeExpression
{
    public override IReadOnlyList<string>? SimpleTypes
    {
        get
        {
            if (IsAnd)
            {
                return null;
            }

            var names = new List<string>();
            foreach (var term in Terms)
            {
                if (term.SimpleTypes is not { } inner)
                {
                    return null;
                }

                names.AddRange(inner);
            }

            return names;
        }
    }

    public override bool Matches(IReadOnlyCollection<string> entityTypes)
    {
        foreach (var term in Terms)
        {
            if (term.Matches(entityTypes) != IsAnd)
            {
                return !IsAnd;
            }
        }

        return IsAnd;
    }

    public override TypeExpression Expand(Func<string, string> expandTerm) =>
        this with { Terms = Terms.Select(t => t.Expand(expandTerm)).ToArray() };

    internal override void Print(StringBuilder text, int parentPrecedence) =>
        LogicalGrammar.Print(text, IsAnd, Terms, parentPrecedence, (term, t, precedence) => term.Print(t, precedence));

    public bool Equals(TypeLogical? other) => other is not null && IsAnd == other.IsAnd && Terms.SequenceEqual(other.Terms);

    public override int GetHashCode() => HashCode.Combine(IsAnd, Terms.Count);
}
