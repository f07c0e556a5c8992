using System.Text;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.Query;

/// <summary>
/// What the selection languages share (q, clause 4.9; type selection, 4.17; scopeQ, 4.19): terms joined by ';'
/// (and, binding tighter) and '|' (or; ',' too for types and scopes), with parentheses. The type and scope parsers
/// are this grammar with their own term; every logical node prints the same way.
/// </summary>
internal static class LogicalGrammar
{
    public const int MaxLength = 4096;
    public const int MaxDepth = 32;

    /// <summary>Parses a whole text: or-terms of and-terms of parenthesised groups or leaves read by <paramref name="leaf"/>.</summary>
    /// <param name="parameter">The parameter named in errors (type, scopeQ).</param>
    /// <param name="what">The text in errors ("type selection").</param>
    /// <param name="missing">The leaf in errors ("a type name").</param>
    /// <exception cref="NgsiException">BadRequestData naming the position of the fault.</exception>
    public static T Parse<T>(string text, string parameter, string what, string missing, Func<Cursor, T> leaf, Func<bool, List<T>, T> combine)
    {
        ArgumentNullException.ThrowIfNull(text);
        var cursor = new Cursor(text, parameter);
        if (text.Length == 0)
        {
            throw cursor.Fail(0, $"the {what} is empty");
        }

        if (text.Length > MaxLength)
        {
            throw cursor.Fail(MaxLength, $"the {what} is longer than {MaxLength} characters");
        }

        var result = ParseOr(cursor, 0);
        if (!cursor.AtEnd)
        {
            throw cursor.Fail($"unexpected '{cursor.Current}'");
        }

        return result;

        T ParseOr(Cursor c, int depth)
        {
            var terms = new List<T> { ParseAnd(c, depth) };
            while (!c.AtEnd && c.Current is '|' or ',')
            {
                c.Position++;
                terms.Add(ParseAnd(c, depth));
            }

            return terms.Count == 1 ? terms[0] : combine(false, terms);
        }

        T ParseAnd(Cursor c, int depth)
        {
            var terms = new List<T> { ParseTerm(c, depth) };
            while (!c.AtEnd && c.Current == ';')
            {
                c.Position++;
                terms.Add(ParseTerm(c, depth));
            }

            return terms.Count == 1 ? terms[0] : combine(true, terms);
        }

        T ParseTerm(Cursor c, int depth)
        {
            if (c.AtEnd)
            {
                throw c.Fail($"{missing} is missing");
            }

            if (c.Current != '(')
            {
                return leaf(c);
            }

            if (depth >= MaxDepth)
            {
                throw c.Fail("parentheses are nested too deeply");
            }

            c.Position++;
            var inner = ParseOr(c, depth + 1);
            if (c.AtEnd || c.Current != ')')
            {
                throw c.Fail("')' expected");
            }

            c.Position++;
            return inner;
        }
    }

    /// <summary>Prints terms joined by ';' or '|', in parentheses when the enclosing operator binds as tight or tighter.</summary>
    public static void Print<T>(StringBuilder text, bool isAnd, IReadOnlyList<T> terms, int parentPrecedence, Action<T, StringBuilder, int> print)
    {
        var precedence = isAnd ? 2 : 1;
        var parenthesised = precedence <= parentPrecedence;
        if (parenthesised)
        {
            text.Append('(');
        }

        for (var i = 0; i < terms.Count; i++)
        {
            if (i > 0)
            {
                text.Append(isAnd ? ';' : '|');
            }

            print(terms[i], text, precedence);
        }

        if (parenthesised)
        {
            text.Append(')');
        }
    }

    /// <summary>Where a parser is in its text.</summary>
    internal sealed class Cursor(string text, string parameter)
    {
        public string Text => text;

        public int Position { get; set; }

        public bool AtEnd => Position >= text.Length;

        public char Current => text[Position];

        public NgsiException Fail(string message) => Fail(Position, message);

        public NgsiException Fail(int position, string message) =>
            NgsiException.BadData($"{parameter}: {message} at position {position} of \"{(text.Length <= 120 ? text : string.Concat(text.AsSpan(0, 117), "..."))}\".");
    }
}
