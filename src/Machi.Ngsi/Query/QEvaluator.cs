using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Ngsi.Query;

/// <summary>Evaluates q expressions (clause 4.9) against entities held in the model.</summary>
public static class QEvaluator
{
    /// <summary>
    /// Whether the entity satisfies an expanded q expression. Compiles the expression each call: to test many
    /// entities against one query, compile it once with <see cref="CompiledQuery"/>.
    /// </summary>
    public static bool Matches(Entity entity, QExpression expandedQ) => new CompiledQuery(expandedQ).Matches(entity);
}

/// <summary>
/// A q expression (attribute names already expanded, see <see cref="QExpressions.Expand"/>) made ready to test many
/// entities: regular expressions compiled once, date/time literals parsed once. Immutable and safe to share
/// between threads.
/// </summary>
/// <remarks>
/// How a term is decided (clause 4.9):
/// <list type="bullet">
/// <item>The path selects targets: for every instance (datasetId) of the attribute, then of each sub-attribute
/// named after a dot, the element at the end — a Property's value (then the members in brackets), a
/// Relationship's object, a LanguageProperty's strings (or, with "[tag]", the string of that language), a
/// VocabProperty's vocab, a ListProperty's valueList, a ListRelationship's objects; or a meta-attribute
/// (observedAt, createdAt, modifiedAt, unitCode, datasetId). A term holds when any target satisfies it.</item>
/// <item>A target whose value is an array satisfies ==, a list or a range when any element does, and != when no
/// element does; &gt;, &gt;=, &lt;, &lt;= when any element does.</item>
/// <item>A missing target satisfies no comparison, != and !~= included: "not equal to x" is asked of a value that
/// exists. Only "!attr" is true of a missing attribute.</item>
/// <item>Values compare only with values of their own type: numbers numerically, strings and URIs by ordinal
/// order, booleans for equality only, dates, times and date-times as instants (a date-time string in the entity
/// is read as one). A comparison across types is false.</item>
/// <item>~= holds when a string target matches the pattern (anywhere, as .NET's Regex.IsMatch, so anchor with ^ and
/// $); !~= when the target has a string and no string matches. Non-strings never match a pattern.</item>
/// </list>
/// </remarks>
public sealed class CompiledQuery
{
    /// <summary>Longest string a pattern is run on; beyond it the text is cut, which keeps one entity's cost bounded.</summary>
    internal const int MaxPatternInput = 64 * 1024;

    private readonly Node _root;

    /// <exception cref="NgsiException">BadRequestData: a regular expression the engine cannot run.</exception>
    public CompiledQuery(QExpression expandedQ)
    {
        ArgumentNullException.ThrowIfNull(expandedQ);
        Expression = expandedQ;
        _root = Compile(expandedQ);
    }

    public QExpression Expression { get; }

    public bool Matches(Entity entity)
    {
        ArgumentNullException.ThrowIfNull(entity);
        return _root.Matches(entity);
    }

    private static Node Compile(QExpression expression) => expression switch
    {
        QLogical logical => new LogicalNode(logical.IsAnd, logical.Terms.Select(Compile).ToArray()),
        QExists exists => new ExistsNode(exists.Path, exists.Negated),
        QComparison comparison => new ComparisonNode(comparison.Path, comparison.Operator, comparison.Value),
        QPattern pattern => new PatternNode(pattern.Path, pattern.Negated, CompilePattern(pattern.Pattern)),
        _ => throw new ArgumentException($"unknown q expression {expression.GetType().Name}", nameof(expression)),
    };

    internal static Regex CompilePattern(string pattern)
    {
        try
        {
            return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException ex)
        {
            throw NgsiException.BadData($"q: invalid regular expression ({ex.Message}).");
        }
        catch (NotSupportedException ex)
        {
            throw NgsiException.BadData($"q: unsupported regular expression construct ({ex.Message}).");
        }
    }

    private abstract class Node
    {
        public abstract bool Matches(Entity entity);
    }

    private sealed class LogicalNode(bool isAnd, Node[] terms) : Node
    {
        public override bool Matches(Entity entity)
        {
            foreach (var term in terms)
            {
                if (term.Matches(entity) != isAnd)
                {
                    return !isAnd;
                }
            }

            return isAnd;
        }
    }

    private sealed class ExistsNode(QPath path, bool negated) : Node
    {
        public override bool Matches(Entity entity) => Targets.Any(entity, path, Always) != negated;

        private static readonly Targets.Test Always = static (in Target _) => true;
    }

    private sealed class PatternNode : Node
    {
        private readonly QPath _path;
        private readonly bool _negated;
        private readonly Regex _regex;
        private readonly Targets.Test _test;

        public PatternNode(QPath path, bool negated, Regex regex)
        {
            _path = path;
            _negated = negated;
            _regex = regex;
            _test = Test;
        }

        public override bool Matches(Entity entity) => Targets.Any(entity, _path, _test);

        private bool Test(in Target target)
        {
            var sawString = false;
            foreach (var scalar in target.Elements())
            {
                var text = scalar.Kind switch
                {
                    ScalarKind.String => scalar.Text!,
                    ScalarKind.Instant => NgsiText.FormatDateTime(scalar.Instant),
                    _ => null,
                };
                if (text is null)
                {
                    continue;
                }

                sawString = true;
                if (_regex.IsMatch(text.Length <= MaxPatternInput ? text : text[..MaxPatternInput]))
                {
                    return !_negated;
                }
            }

            return _negated && sawString;
        }
    }

    private sealed class ComparisonNode : Node
    {
        private readonly QPath _path;
        private readonly QOperator _op;
        private readonly Operand[] _values;
        private readonly Operand? _rangeTo;
        private readonly Targets.Test _test;

        public ComparisonNode(QPath path, QOperator op, QValue value)
        {
            _test = Test;
            _path = path;
            _op = op;
            switch (value)
            {
                case QRange range:
                    _values = [Operand.Of(range.From)];
                    _rangeTo = Operand.Of(range.To);
                    break;
                case QList list:
                    _values = list.Values.Select(Operand.Of).ToArray();
                    break;
                default:
                    _values = [Operand.Of(value)];
                    break;
            }
        }

        public override bool Matches(Entity entity) => Targets.Any(entity, _path, _test);

        private bool Test(in Target target)
        {
            var vocab = target.Kind == AttributeKind.VocabProperty;
            switch (_op)
            {
                case QOperator.Equal:
                    return AnyElementEquals(target, vocab);
                case QOperator.NotEqual:
                    return !AnyElementEquals(target, vocab);
                default:
                    foreach (var scalar in target.Elements())
                    {
                        if (Operand.Compare(scalar, _values[0], vocab: false) is { } c && _op switch
                        {
                            QOperator.Greater => c > 0,
                            QOperator.GreaterOrEqual => c >= 0,
                            QOperator.Less => c < 0,
                            _ => c <= 0,
                        })
                        {
                            return true;
                        }
                    }

                    return false;
            }
        }

        private bool AnyElementEquals(in Target target, bool vocab)
        {
            foreach (var scalar in target.Elements())
            {
                if (_rangeTo is { } to)
                {
                    if (Operand.Compare(scalar, _values[0], vocab) is >= 0 && Operand.Compare(scalar, to, vocab) is <= 0)
                    {
                        return true;
                    }

                    continue;
                }

                foreach (var value in _values)
                {
                    if (Operand.AreEqual(scalar, value, vocab))
                    {
                        return true;
                    }
                }
            }

            return false;
        }
    }
}

internal enum ScalarKind
{
    Other,
    Number,
    String,
    Boolean,
    Instant,
}

/// <summary>One comparable element of a target: a JSON number, string or boolean, or a system timestamp.</summary>
internal readonly record struct Scalar(ScalarKind Kind, double Number = 0, string? Text = null, bool Boolean = false, DateTimeOffset Instant = default)
{
    public static Scalar Of(JsonNode? node)
    {
        if (node is JsonObject obj && obj.TryGetPropertyValue("@value", out var inner))
        {
            // A typed value such as {"@type": "DateTime", "@value": "2024-01-01T00:00:00Z"} compares as its value.
            node = inner;
        }

        if (node is not JsonValue value)
        {
            return new Scalar(ScalarKind.Other);
        }

        return value.GetValueKind() switch
        {
            JsonValueKind.Number => NumberOf(value) is var n && !double.IsNaN(n) ? new Scalar(ScalarKind.Number, Number: n) : new Scalar(ScalarKind.Other),
            JsonValueKind.String => new Scalar(ScalarKind.String, Text: value.GetValue<string>()),
            JsonValueKind.True => new Scalar(ScalarKind.Boolean, Boolean: true),
            JsonValueKind.False => new Scalar(ScalarKind.Boolean, Boolean: false),
            _ => new Scalar(ScalarKind.Other),
        };
    }

    /// <summary>A node parsed from JSON reads as any number type; one built in code only as the type it holds.</summary>
    private static double NumberOf(JsonValue value)
    {
        if (value.TryGetValue(out double d)) return d;
        if (value.TryGetValue(out long l)) return l;
        if (value.TryGetValue(out int i)) return i;
        if (value.TryGetValue(out decimal m)) return (double)m;
        if (value.TryGetValue(out float f)) return f;
        if (value.TryGetValue(out ulong u)) return u;
        return double.NaN;
    }
}

/// <summary>The value on the right of a comparison, parsed once.</summary>
internal sealed class Operand
{
    private enum OperandKind
    {
        Number,
        Text,
        Boolean,
        DateTime,
        Date,
        Time,
    }

    private OperandKind _kind;
    private double _number;
    private string _text = string.Empty;
    private string? _expanded;
    private bool _boolean;
    private DateTimeOffset _instant;
    private DateOnly _date;
    private TimeOnly _time;

    public static Operand Of(QValue value) => value switch
    {
        QNumber n => new Operand { _kind = OperandKind.Number, _number = n.Value },
        QString s => new Operand { _kind = OperandKind.Text, _text = s.Value, _expanded = s.Expanded },
        QUri u => new Operand { _kind = OperandKind.Text, _text = u.Value, _expanded = u.Expanded },
        QBoolean b => new Operand { _kind = OperandKind.Boolean, _boolean = b.Value },
        QDateTime d => OfTemporal(d.Text),
        _ => throw new ArgumentException($"a single value expected, not {value.GetType().Name}", nameof(value)),
    };

    private static Operand OfTemporal(string text)
    {
        if (TryDate(text, out var date))
        {
            return new Operand { _kind = OperandKind.Date, _date = date, _text = text };
        }

        if (TryTime(text, out var time))
        {
            return new Operand { _kind = OperandKind.Time, _time = time, _text = text };
        }

        if (NgsiText.TryParseDateTime(text, out var instant))
        {
            return new Operand { _kind = OperandKind.DateTime, _instant = instant, _text = text };
        }

        // The parser only builds QDateTime from text it has checked; anything else compares as text.
        return new Operand { _kind = OperandKind.Text, _text = text };
    }

    internal static bool TryDate(string text, out DateOnly date) =>
        DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out date);

    internal static bool TryTime(string text, out TimeOnly time)
    {
        time = default;
        return text.Length is >= 5 and <= 20 && text[2] == ':' && char.IsAsciiDigit(text[0])
            && TimeOnly.TryParse(text.AsSpan().TrimEnd('Z'), CultureInfo.InvariantCulture, out time);
    }

    public static bool AreEqual(in Scalar scalar, Operand operand, bool vocab)
    {
        if (operand._kind == OperandKind.Boolean)
        {
            return scalar.Kind == ScalarKind.Boolean && scalar.Boolean == operand._boolean;
        }

        if (vocab && operand._kind == OperandKind.Text && scalar.Kind == ScalarKind.String && operand._expanded == scalar.Text)
        {
            return true;
        }

        return Compare(scalar, operand, vocab) == 0;
    }

    /// <summary>The order of the target against the operand, or null when they are not of one type.</summary>
    public static int? Compare(in Scalar scalar, Operand operand, bool vocab)
    {
        switch (operand._kind)
        {
            case OperandKind.Number:
                return scalar.Kind == ScalarKind.Number ? scalar.Number.CompareTo(operand._number) : null;
            case OperandKind.Text:
                if (scalar.Kind != ScalarKind.String)
                {
                    return null;
                }

                return string.CompareOrdinal(scalar.Text, vocab && operand._expanded is { } e ? e : operand._text);
            case OperandKind.DateTime:
                if (scalar.Kind == ScalarKind.Instant)
                {
                    return scalar.Instant.CompareTo(operand._instant);
                }

                return scalar.Kind == ScalarKind.String && NgsiText.TryParseDateTime(scalar.Text, out var instant)
                    ? instant.CompareTo(operand._instant)
                    : null;
            case OperandKind.Date:
                return scalar.Kind == ScalarKind.String && TryDate(scalar.Text!, out var date) ? date.CompareTo(operand._date) : null;
            case OperandKind.Time:
                return scalar.Kind == ScalarKind.String && TryTime(scalar.Text!, out var time) ? time.CompareTo(operand._time) : null;
            default:
                return null;
        }
    }
}

/// <summary>What a path selects in one attribute instance: a JSON node, or a meta-attribute's value.</summary>
internal readonly struct Target
{
    private readonly JsonNode? _node;
    private readonly Scalar _meta;
    private readonly bool _isMeta;
    private readonly bool _isLanguageMap;

    private Target(AttributeKind kind, JsonNode? node, Scalar meta, bool isMeta, bool isLanguageMap)
    {
        Kind = kind;
        _node = node;
        _meta = meta;
        _isMeta = isMeta;
        _isLanguageMap = isLanguageMap;
    }

    public AttributeKind Kind { get; }

    public static Target OfNode(AttributeKind kind, JsonNode? node, bool isLanguageMap = false) => new(kind, node, default, false, isLanguageMap);

    public static Target OfMeta(Scalar value) => new(AttributeKind.Property, null, value, true, false);

    /// <summary>The comparable elements: the value itself, or each element of an array value.</summary>
    public List<Scalar> Elements()
    {
        var elements = new List<Scalar>(1);
        if (_isMeta)
        {
            elements.Add(_meta);
            return elements;
        }

        if (_isLanguageMap)
        {
            foreach (var (_, text) in (JsonObject)_node!)
            {
                AddFlat(elements, text);
            }

            return elements;
        }

        if (Kind == AttributeKind.ListRelationship && _node is JsonArray objects)
        {
            foreach (var item in objects)
            {
                elements.Add(Scalar.Of(item is JsonObject o ? o["object"] : item));
            }

            return elements;
        }

        AddFlat(elements, _node);
        return elements;
    }

    private static void AddFlat(List<Scalar> elements, JsonNode? node)
    {
        if (node is JsonArray array)
        {
            foreach (var item in array)
            {
                elements.Add(Scalar.Of(item));
            }
        }
        else
        {
            elements.Add(Scalar.Of(node));
        }
    }
}

/// <summary>Walks a q path through an entity.</summary>
internal static class Targets
{
    public delegate bool Test(in Target target);

    /// <summary>True when some target the path selects passes the test.</summary>
    public static bool Any(Entity entity, QPath path, Test test)
    {
        if (!entity.Attributes.TryGetValue(path.Names[0], out var instances))
        {
            return false;
        }

        foreach (var instance in instances)
        {
            if (AnyFrom(instance, path, 1, test))
            {
                return true;
            }
        }

        return false;
    }

    private static bool AnyFrom(AttributeInstance instance, QPath path, int index, Test test)
    {
        if (instance.IsNullMarker)
        {
            return false;
        }

        if (index == path.Names.Count)
        {
            return Leaf(instance, path.Members) is { } target && test(target);
        }

        var name = path.Names[index];
        if (QExpressions.MetaAttributes.Contains(name))
        {
            if (index != path.Names.Count - 1 || path.Members.Count > 0)
            {
                return false;
            }

            Scalar? meta = name switch
            {
                "observedAt" => instance.ObservedAt is { } o ? new Scalar(ScalarKind.String, Text: o) : null,
                "unitCode" => instance.UnitCode is { } u ? new Scalar(ScalarKind.String, Text: u) : null,
                "datasetId" => instance.DatasetId is { } d ? new Scalar(ScalarKind.String, Text: d) : null,
                "createdAt" => instance.CreatedAt == default ? null : new Scalar(ScalarKind.Instant, Instant: instance.CreatedAt),
                _ => instance.ModifiedAt == default ? null : new Scalar(ScalarKind.Instant, Instant: instance.ModifiedAt),
            };
            return meta is { } value && test(Target.OfMeta(value));
        }

        if (instance.Sub is not { } sub || !sub.TryGetValue(name, out var subInstances))
        {
            return false;
        }

        foreach (var subInstance in subInstances)
        {
            if (AnyFrom(subInstance, path, index + 1, test))
            {
                return true;
            }
        }

        return false;
    }

    private static Target? Leaf(AttributeInstance instance, IReadOnlyList<string> members)
    {
        var payload = instance.Payload;
        switch (instance.Kind)
        {
            case AttributeKind.LanguageProperty:
                if (payload is not JsonObject languageMap)
                {
                    return null;
                }

                if (members.Count == 0)
                {
                    return Target.OfNode(instance.Kind, languageMap, isLanguageMap: true);
                }

                // "name[ja]": the string(s) of one language; tags compare case-insensitively (BCP 47).
                if (members.Count == 1)
                {
                    foreach (var (tag, text) in languageMap)
                    {
                        if (string.Equals(tag, members[0], StringComparison.OrdinalIgnoreCase))
                        {
                            return Target.OfNode(instance.Kind, text);
                        }
                    }
                }

                return null;
            case AttributeKind.Property or AttributeKind.JsonProperty or AttributeKind.GeoProperty:
                var node = payload;
                foreach (var member in members)
                {
                    if (node is not JsonObject obj || !obj.TryGetPropertyValue(member, out node) || node is null)
                    {
                        return null;
                    }
                }

                return Target.OfNode(instance.Kind, node);
            default:
                // Relationship, VocabProperty, ListProperty, ListRelationship: no members to select inside.
                return members.Count == 0 ? Target.OfNode(instance.Kind, payload) : null;
        }
    }
}
