using System.Globalization;
using System.Text;

namespace Machi.Ngsi.Query;

/// <summary>
/// A parsed NGSI-LD q expression (clause 4.9): a typed tree the query engine evaluates or translates to SQL.
/// <see cref="ToString"/> prints the canonical text, which parses back to the same tree.
/// </summary>
public abstract record QExpression
{
    internal abstract void Print(StringBuilder text, int parentPrecedence);

    public sealed override string ToString()
    {
        var text = new StringBuilder();
        Print(text, 0);
        return text.ToString();
    }
}

/// <summary>Terms joined by ';' (AND, binds tighter) or '|' (OR).</summary>
public sealed record QLogical(bool IsAnd, IReadOnlyList<QExpression> Terms) : QExpression
{
    internal override void Print(StringBuilder text, int parentPrecedence) =>
        LogicalGrammar.Print(text, IsAnd, Terms, parentPrecedence, (term, t, precedence) => term.Print(t, precedence));

    public bool Equals(QLogical? other) => other is not null && IsAnd == other.IsAnd && Terms.SequenceEqual(other.Terms);

    public override int GetHashCode() => HashCode.Combine(IsAnd, Terms.Count);
}

/// <summary>The existence test "attr" or its negation "!attr".</summary>
public sealed record QExists(QPath Path, bool Negated) : QExpression
{
    internal override void Print(StringBuilder text, int parentPrecedence)
    {
        if (Negated)
        {
            text.Append('!');
        }

        text.Append(Path);
    }
}

public enum QOperator
{
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// <summary>"attr op value": ==, !=, &gt;, &gt;=, &lt;, &lt;= against a value, list or range.</summary>
public sealed record QComparison(QPath Path, QOperator Operator, QValue Value) : QExpression
{
    internal override void Print(StringBuilder text, int parentPrecedence)
    {
        text.Append(Path).Append(Operator switch
        {
            QOperator.Equal => "==",
            QOperator.NotEqual => "!=",
            QOperator.Greater => ">",
            QOperator.GreaterOrEqual => ">=",
            QOperator.Less => "<",
            _ => "<=",
        });
        Value.Print(text);
    }
}

/// <summary>"attr~=regex" or "attr!~=regex".</summary>
public sealed record QPattern(QPath Path, bool Negated, string Pattern) : QExpression
{
    internal override void Print(StringBuilder text, int parentPrecedence) =>
        text.Append(Path).Append(Negated ? "!~=" : "~=").Append(Pattern);
}

/// <summary>
/// An attribute path: the attribute, then sub-attribute or meta-attribute names after dots ("a.b",
/// "a.observedAt"), then compound-value members in brackets ("a[x][y]").
/// </summary>
public sealed record QPath(IReadOnlyList<string> Names, IReadOnlyList<string> Members)
{
    public string Attribute => Names[0];

    public bool Equals(QPath? other) => other is not null && Names.SequenceEqual(other.Names) && Members.SequenceEqual(other.Members);

    public override int GetHashCode() => HashCode.Combine(Names[0], Names.Count, Members.Count);

    public override string ToString()
    {
        var text = new StringBuilder(string.Join('.', Names));
        foreach (var member in Members)
        {
            text.Append('[').Append(member).Append(']');
        }

        return text.ToString();
    }
}

/// <summary>A value on the right of a comparison.</summary>
public abstract record QValue
{
    internal abstract void Print(StringBuilder text);
}

public sealed record QNumber(double Value) : QValue
{
    internal override void Print(StringBuilder text) => text.Append(Value.ToString("R", CultureInfo.InvariantCulture));
}

public sealed record QString(string Value) : QValue
{
    /// <summary>The value expanded as a term (set by <see cref="QExpressions.Expand"/>): what a VocabProperty,
    /// whose vocab is held expanded, is compared with.</summary>
    public string? Expanded { get; init; }

    internal override void Print(StringBuilder text) =>
        text.Append('"').Append(Value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)).Append('"');
}

public sealed record QBoolean(bool Value) : QValue
{
    internal override void Print(StringBuilder text) => text.Append(Value ? "true" : "false");
}

/// <summary>An unquoted date, time or date-time (kept as written; the evaluator compares instants).</summary>
public sealed record QDateTime(string Text) : QValue
{
    internal override void Print(StringBuilder text) => text.Append(Text);
}

/// <summary>An unquoted URI, e.g. a Relationship target.</summary>
public sealed record QUri(string Value) : QValue
{
    /// <summary>The value expanded as a compact IRI (set by <see cref="QExpressions.Expand"/>), for VocabProperty targets.</summary>
    public string? Expanded { get; init; }

    internal override void Print(StringBuilder text) => text.Append(Value);
}

/// <summary>"a,b,c": equal to any of the values.</summary>
public sealed record QList(IReadOnlyList<QValue> Values) : QValue
{
    internal override void Print(StringBuilder text)
    {
        for (var i = 0; i < Values.Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            Values[i].Print(text);
        }
    }

    public bool Equals(QList? other) => other is not null && Values.SequenceEqual(other.Values);

    public override int GetHashCode() => Values.Count;
}

/// <summary>"from..to": within the closed range.</summary>
public sealed record QRange(QValue From, QValue To) : QValue
{
    internal override void Print(StringBuilder text)
    {
        From.Print(text);
        text.Append("..");
        To.Print(text);
    }
}
