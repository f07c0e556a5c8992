using System.Text;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Ngsi.Query;

/// <summary>
/// A scope query (clause 4.19): scope patterns joined by ',' or '|' (OR) and ';' (AND, binding tighter), grouped
/// with parentheses. A pattern is a path of levels: "/Aizu/Kita" matches that scope exactly, "/Aizu/#" matches
/// /Aizu and every scope below it, "/Aizu/+/Station" any single level in the middle, and "/#" every scope.
/// A pattern holds for an entity when any one of its scopes matches; an entity without scopes matches none.
/// </summary>
public abstract record ScopeQuery
{
    public abstract bool Matches(IReadOnlyList<string>? entityScopes);

    internal abstract void Print(StringBuilder text, int parentPrecedence);

    public sealed override string ToString()
    {
        var text = new StringBuilder();
        Print(text, 0);
        return text.ToString();
    }

    /// <exception cref="NgsiException">BadRequestData naming the position of the fault.</exception>
    public static ScopeQuery Parse(string text) =>
        LogicalGrammar.Parse<ScopeQuery>(text, "scopeQ", "scope query", "a scope pattern", ParsePattern, (isAnd, terms) => new ScopeLogical(isAnd, terms));

    private static ScopePattern ParsePattern(LogicalGrammar.Cursor c)
    {
        if (c.Current != '/')
        {
            throw c.Fail("a scope pattern starts with '/'");
        }

        var levels = new List<string>();
        while (!c.AtEnd && c.Current == '/')
        {
            if (levels is [.., "#"])
            {
                throw c.Fail("'#' may only be the last level");
            }

            c.Position++;
            var start = c.Position;
            while (!c.AtEnd && IsLevelChar(c.Current))
            {
                c.Position++;
            }

            var level = c.Text[start..c.Position];
            if (level.Length == 0)
            {
                throw c.Fail("an empty scope level");
            }

            if (level.Length > 1 && (level.Contains('#', StringComparison.Ordinal) || level.Contains('+', StringComparison.Ordinal)))
            {
                throw c.Fail(start, "'#' and '+' must be a whole level");
            }

            levels.Add(level);
        }

        return new ScopePattern(levels);
    }

    /// <summary>What a scope level may hold (as <see cref="NgsiText.IsScope"/> accepts), plus the wildcards.</summary>
    private static bool IsLevelChar(char c) =>
        c > ' ' && c != 0x7f && c is not ('/' or '(' or ')' or ';' or '|' or ',' or '<' or '>' or '"' or '\'' or '=' or '?' or '&');
}

/// <summary>One scope pattern, as its levels ("+" one level, "#" the rest, "#" only last).</summary>
public sealed record ScopePattern(IReadOnlyList<string> Levels) : ScopeQuery
{
    public override bool Matches(IReadOnlyList<string>? entityScopes)
    {
        if (entityScopes is null)
        {
            return false;
        }

        foreach (var scope in entityScopes)
        {
            if (MatchesScope(scope))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether one scope ("/a/b") matches the pattern.</summary>
    public bool MatchesScope(string scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        if (scope.Length < 2 || scope[0] != '/')
        {
            return false;
        }

        var position = 1;
        for (var i = 0; i < Levels.Count; i++)
        {
            var level = Levels[i];
            if (level == "#")
            {
                // "/a/#" holds for /a itself (position past its end) and for anything below it.
                return true;
            }

            if (position > scope.Length)
            {
                return false;
            }

            var end = scope.IndexOf('/', position);
            if (end < 0)
            {
                end = scope.Length;
            }

            if (end == position || (level != "+" && !scope.AsSpan(position, end - position).SequenceEqual(level)))
            {
                return false;
            }

            position = end + 1;
        }

        return position > scope.Length;
    }

    internal override void Print(StringBuilder text, int parentPrecedence)
    {
        foreach (var level in Levels)
        {
            text.Append('/').Append(level);
        }
    }

    public bool Equals(ScopePattern? other) => other is not null && Levels.SequenceEqual(other.Levels);

    public override int GetHashCode() => Levels.Count;
}

/// <summary>Scope queries joined by ';' (AND) or '|' / ',' (OR).</summary>
public sealed record ScopeLogical(bool IsAnd, IReadOnlyList<ScopeQuery> Terms) : ScopeQuery
{
    public override bool Matches(IReadOnlyList<string>? entityScopes)
    {
        foreach (var term in Terms)
        {
            if (term.Matches(entityScopes) != IsAnd)
            {
                return !IsAnd;
            }
        }

        return IsAnd;
    }

    internal override void Print(StringBuilder text, int parentPrecedence) =>
        LogicalGrammar.Print(text, IsAnd, Terms, parentPrecedence, (term, t, precedence) => term.Print(t, precedence));

    public bool Equals(ScopeLogical? other) => other is not null && IsAnd == other.IsAnd && Terms.SequenceEqual(other.Terms);

    public override int GetHashCode() => HashCode.Combine(IsAnd, Terms.Count);
}
