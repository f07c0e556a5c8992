using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.Query;

/// <summary>
/// Parses the q query language of NGSI-LD (clause 4.9) into a <see cref="QExpression"/>. ';' (AND) binds tighter
/// than '|' (OR); parentheses group. Any malformed input is a BadRequestData error naming the position.
/// Regular expressions are compiled with the non-backtracking engine, so matching time is linear in the input.
/// </summary>
public static class QParser
{
    private const int MaxLength = 4096;
    private const int MaxDepth = 32;

    public static QExpression Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            throw Error(text, 0, "the expression is empty");
        }

        if (text.Length > MaxLength)
        {
            throw Error(text, MaxLength, $"the expression is longer than {MaxLength} characters");
        }

        var parser = new State(text);
        var expression = parser.ParseOr(0);
        if (parser.Position < text.Length)
        {
            throw parser.Fail($"unexpected '{text[parser.Position]}'");
        }

        return expression;
    }

    private static NgsiException Error(string text, int position, string message) =>
        NgsiException.BadData($"q: {message} at position {position} of \"{(text.Length <= 120 ? text : string.Concat(text.AsSpan(0, 117), "..."))}\".");

    private sealed class State(string text)
    {
        public int Position { get; private set; }

        private bool AtEnd => Position >= text.Length;

        private char Peek => text[Position];

        public NgsiException Fail(string message) => Error(text, Position, message);

        public QExpression ParseOr(int depth)
        {
            var terms = new List<QExpression> { ParseAnd(depth) };
            while (!AtEnd && Peek == '|')
            {
                Position++;
                terms.Add(ParseAnd(depth));
            }

            return terms.Count == 1 ? terms[0] : new QLogical(false, terms);
        }

        private QExpression ParseAnd(int depth)
        {
            var terms = new List<QExpression> { ParseTerm(depth) };
            while (!AtEnd && Peek == ';')
            {
                Position++;
                terms.Add(ParseTerm(depth));
            }

            return terms.Count == 1 ? terms[0] : new QLogical(true, terms);
        }

        private QExpression ParseTerm(int depth)
        {
            if (AtEnd)
            {
                throw Fail("a query term is missing");
            }

            if (Peek == '(')
            {
                if (depth >= MaxDepth)
                {
                    throw Fail("parentheses are nested too deeply");
                }

                Position++;
                var inner = ParseOr(depth + 1);
                if (AtEnd || Peek != ')')
                {
                    throw Fail("')' expected");
                }

                Position++;
                return inner;
            }

            if (Peek == '!')
            {
                Position++;
                return new QExists(ParsePath(), Negated: true);
            }

            var path = ParsePath();
            if (AtEnd || Peek is ';' or '|' or ')')
            {
                return new QExists(path, Negated: false);
            }

            if (TryTake("~="))
            {
                return new QPattern(path, false, ParsePattern());
            }

            if (TryTake("!~="))
            {
                return new QPattern(path, true, ParsePattern());
            }

            QOperator op;
            if (TryTake("==")) op = QOperator.Equal;
            else if (TryTake("!=")) op = QOperator.NotEqual;
            else if (TryTake(">=")) op = QOperator.GreaterOrEqual;
            else if (TryTake("<=")) op = QOperator.LessOrEqual;
            else if (TryTake(">")) op = QOperator.Greater;
            else if (TryTake("<")) op = QOperator.Less;
            else throw Fail("an operator (==, !=, >, >=, <, <=, ~=, !~=) expected");

            var value = ParseValue(op);
            return new QComparison(path, op, value);
        }

        private bool TryTake(string token)
        {
            if (string.CompareOrdinal(text, Position, token, 0, token.Length) == 0)
            {
                Position += token.Length;
                return true;
            }

            return false;
        }

        private QPath ParsePath()
        {
            var names = new List<string> { ParseName() };
            while (!AtEnd && Peek == '.')
            {
                Position++;
                names.Add(ParseName());
            }

            var members = new List<string>();
            while (!AtEnd && Peek == '[')
            {
                Position++;
                var start = Position;
                while (!AtEnd && Peek != ']')
                {
                    if (IsStop(Peek) || Peek == '[')
                    {
                        throw Fail("']' expected");
                    }

                    Position++;
                }

                if (AtEnd || Position == start)
                {
                    throw Fail(AtEnd ? "']' expected" : "an empty [] member");
                }

                members.Add(text[start..Position]);
                Position++;
            }

            return new QPath(names, members);
        }

        private string ParseName()
        {
            var start = Position;
            while (!AtEnd && IsNameChar(Peek))
            {
                Position++;
            }

            return Position == start ? throw Fail("an attribute name expected") : text[start..Position];
        }

        private static bool IsNameChar(char c) =>
            c > ' ' && c is not ('.' or '[' or ']' or ';' or '|' or '(' or ')' or '=' or '!' or '<' or '>' or '~' or ',' or '"' or '\'');

        private static bool IsStop(char c) => c is ';' or '|' or ')';

        /// <summary>A regular expression runs to the next ';', '|' or ')' outside its own parentheses
        /// ("name~=(?i)aizu|x" is the pattern "(?i)aizu" OR the term "x"; "(a|b)" stays one pattern).</summary>
        private string ParsePattern()
        {
            var start = Position;
            var depth = 0;
            while (!AtEnd && !(depth == 0 && IsStop(Peek)))
            {
                if (Peek == '\\' && Position + 1 < text.Length)
                {
                    Position += 2;
                    continue;
                }

                depth += Peek switch { '(' => 1, ')' => -1, _ => 0 };
                Position++;
            }

            var pattern = text[start..Position];
            if (pattern.Length == 0)
            {
                throw Fail("a regular expression expected");
            }

            try
            {
                _ = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
            }
            catch (ArgumentException ex)
            {
                throw Error(text, start, $"invalid regular expression ({ex.Message})");
            }
            catch (NotSupportedException ex)
            {
                throw Error(text, start, $"unsupported regular expression construct ({ex.Message})");
            }

            return pattern;
        }

        private QValue ParseValue(QOperator op)
        {
            var first = ParseSingle();
            if (TryTake(".."))
            {
                if (op is not (QOperator.Equal or QOperator.NotEqual))
                {
                    throw Fail("a range is only allowed with == or !=");
                }

                return new QRange(first, ParseSingle());
            }

            if (AtEnd || Peek != ',')
            {
                return first;
            }

            if (op is not (QOperator.Equal or QOperator.NotEqual))
            {
                throw Fail("a list of values is only allowed with == or !=");
            }

            var values = new List<QValue> { first };
            while (!AtEnd && Peek == ',')
            {
                Position++;
                values.Add(ParseSingle());
            }

            return new QList(values);
        }

        private QValue ParseSingle()
        {
            if (AtEnd)
            {
                throw Fail("a value expected");
            }

            if (Peek == '"')
            {
                return new QString(ParseQuoted());
            }

            var start = Position;
            while (!AtEnd && !IsStop(Peek) && Peek != ',' && !(Peek == '.' && Position + 1 < text.Length && text[Position + 1] == '.'))
            {
                Position++;
            }

            var token = text[start..Position];
            if (token.Length == 0)
            {
                throw Fail("a value expected");
            }

            if (token is "true" or "false")
            {
                return new QBoolean(token == "true");
            }

            if (IsNumber(token) && double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number))
            {
                return new QNumber(number);
            }

            if (IsTemporal(token))
            {
                return new QDateTime(token);
            }

            if (Model.NgsiText.IsUri(token))
            {
                return new QUri(token);
            }

            throw Error(text, start, $"'{token}' is not a number, boolean, date/time or URI; put text in double quotes");
        }

        private string ParseQuoted()
        {
            var start = Position;
            Position++; // opening quote
            var value = new StringBuilder();
            while (!AtEnd && Peek != '"')
            {
                if (Peek == '\\')
                {
                    Position++;
                    if (AtEnd)
                    {
                        break;
                    }
                }

                value.Append(Peek);
                Position++;
            }

            if (AtEnd)
            {
                throw Error(text, start, "unterminated string");
            }

            Position++; // closing quote
            return value.ToString();
        }

        private static bool IsNumber(string token)
        {
            var i = token[0] is '-' or '+' ? 1 : 0;
            return i < token.Length && char.IsAsciiDigit(token[i]) && token.All(c => char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '-' or '+');
        }

        /// <summary>A date (2018-12-31), time (12:30:00Z) or date-time (2018-12-31T12:30:00Z) as clause 4.9 allows.</summary>
        private static bool IsTemporal(string token)
        {
            if (token.Length >= 10 && token[4] == '-' && token[7] == '-' && char.IsAsciiDigit(token[0]))
            {
                return token.Length == 10
                    ? DateOnly.TryParseExact(token, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _)
                    : token[10] == 'T' && Model.NgsiText.TryParseDateTime(token, out _);
            }

            return token.Length >= 8 && token[2] == ':' && token[5] == ':'
                && TimeOnly.TryParse(token.TrimEnd('Z'), CultureInfo.InvariantCulture, out _);
        }
    }
}
