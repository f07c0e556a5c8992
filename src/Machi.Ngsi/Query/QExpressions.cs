namespace Machi.Ngsi.Query;

/// <summary>Operations on parsed q expressions that need the request's @context.</summary>
public static class QExpressions
{
    /// <summary>
    /// Names after a dot that address a member of the attribute itself rather than a sub-attribute
    /// ("temperature.observedAt"); they are NGSI-LD keywords, so they are never expanded.
    /// </summary>
    public static IReadOnlySet<string> MetaAttributes { get; } =
        new HashSet<string>(StringComparer.Ordinal) { "observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId" };

    /// <summary>
    /// The same expression with attribute and sub-attribute names expanded to IRIs. Meta-attribute keywords
    /// (<see cref="MetaAttributes"/>) stay as they are, and so do compound members in brackets: they name keys
    /// inside a JSON value (or language tags of a LanguageProperty), which JSON-LD expansion does not touch.
    /// Quoted strings and URIs also get their expansion as a term recorded (<see cref="QString.Expanded"/>),
    /// because a VocabProperty holds its vocab expanded and is compared after expansion.
    /// </summary>
    public static QExpression Expand(QExpression expression, Func<string, string> expandTerm)
    {
        ArgumentNullException.ThrowIfNull(expression);
        ArgumentNullException.ThrowIfNull(expandTerm);
        return expression switch
        {
            QLogical logical => logical with { Terms = logical.Terms.Select(t => Expand(t, expandTerm)).ToArray() },
            QExists exists => exists with { Path = Expand(exists.Path, expandTerm) },
            QComparison comparison => comparison with
            {
                Path = Expand(comparison.Path, expandTerm),
                Value = Expand(comparison.Value, expandTerm),
            },
            QPattern pattern => pattern with { Path = Expand(pattern.Path, expandTerm) },
            _ => throw new ArgumentException($"unknown q expression {expression.GetType().Name}", nameof(expression)),
        };
    }

    /// <summary>
    /// expandValues= (clause 6.3.x): the comparisons on the named attributes (expanded names) compare with their values
    /// expanded as terms — a query may write "commercial" for an attribute that holds the IRI
    /// "https://…/commercial". Call on an expression already passed through <see cref="Expand(QExpression, Func{string, string})"/>.
    /// </summary>
    public static QExpression ExpandValues(QExpression expression, IReadOnlySet<string> attributes)
    {
        ArgumentNullException.ThrowIfNull(expression);
        ArgumentNullException.ThrowIfNull(attributes);
        return expression switch
        {
            QLogical logical => logical with { Terms = logical.Terms.Select(t => ExpandValues(t, attributes)).ToArray() },
            QComparison comparison when attributes.Contains(comparison.Path.Names[0]) => comparison with { Value = TakeExpansion(comparison.Value) },
            _ => expression,
        };
    }

    private static QValue TakeExpansion(QValue value) => value switch
    {
        QString { Expanded: { } e } s => s with { Value = e },
        QUri { Expanded: { } e } u => u with { Value = e },
        QList list => list with { Values = list.Values.Select(TakeExpansion).ToArray() },
        _ => value,
    };

    private static QPath Expand(QPath path, Func<string, string> expandTerm)
    {
        var names = new string[path.Names.Count];
        for (var i = 0; i < names.Length; i++)
        {
            var name = path.Names[i];
            names[i] = i > 0 && MetaAttributes.Contains(name) ? name : expandTerm(name);
        }

        return new QPath(names, path.Members);
    }

    private static QValue Expand(QValue value, Func<string, string> expandTerm) => value switch
    {
        QString s => s with { Expanded = ExpandValue(s.Value, expandTerm) },
        QUri u => u with { Expanded = ExpandValue(u.Value, expandTerm) },
        QList list => list with { Values = list.Values.Select(v => Expand(v, expandTerm)).ToArray() },
        QRange range => range with { From = Expand(range.From, expandTerm), To = Expand(range.To, expandTerm) },
        _ => value,
    };

    private static string? ExpandValue(string value, Func<string, string> expandTerm)
    {
        // Only something that could be a term: a value with spaces or an empty one is plain text.
        if (value.Length == 0 || value.Length > 512 || value.Any(char.IsWhiteSpace))
        {
            return null;
        }

        var expanded = expandTerm(value);
        return expanded == value ? null : expanded;
    }
}
