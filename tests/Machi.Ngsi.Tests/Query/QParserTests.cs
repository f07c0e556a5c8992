using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Query;

namespace Machi.Ngsi.Tests.Query;

public class QParserTests
{
    private static QPath P(params string[] names) => new(names, []);

    [Fact]
    public void Spec_examples_parse_to_the_expected_trees()
    {
        Assert.Equal(new QComparison(P("temperature"), QOperator.GreaterOrEqual, new QNumber(20)), QParser.Parse("temperature>=20"));
        Assert.Equal(new QComparison(P("brandName"), QOperator.NotEqual, new QString("Mercedes")), QParser.Parse("brandName!=\"Mercedes\""));
        Assert.Equal(new QComparison(P("isParked"), QOperator.Equal, new QUri("urn:ngsi-ld:OffStreetParking:Downtown1")), QParser.Parse("isParked==urn:ngsi-ld:OffStreetParking:Downtown1"));
        Assert.Equal(new QExists(P("isMonitoredBy"), false), QParser.Parse("isMonitoredBy"));
        Assert.Equal(new QExists(P("isMonitoredBy"), true), QParser.Parse("!isMonitoredBy"));
        Assert.Equal(new QComparison(new QPath(["address"], ["city"]), QOperator.Equal, new QString("Berlin")), QParser.Parse("address[city]==\"Berlin\""));
        Assert.Equal(new QComparison(new QPath(["sensor", "rawdata"], ["airquality", "particulate"]), QOperator.Equal, new QNumber(40)), QParser.Parse("sensor.rawdata[airquality][particulate]==40"));
        Assert.Equal(new QComparison(P("temperature"), QOperator.Equal, new QRange(new QNumber(20), new QNumber(25))), QParser.Parse("temperature==20..25"));
        Assert.Equal(new QComparison(P("speed"), QOperator.Equal, new QList([new QNumber(1), new QNumber(2.5), new QNumber(-3)])), QParser.Parse("speed==1,2.5,-3"));
        Assert.Equal(new QComparison(P("temperature", "observedAt"), QOperator.GreaterOrEqual, new QDateTime("2017-12-24T12:00:00Z")), QParser.Parse("temperature.observedAt>=2017-12-24T12:00:00Z"));
        Assert.Equal(new QComparison(P("open"), QOperator.Equal, new QBoolean(true)), QParser.Parse("open==true"));
        Assert.Equal(new QPattern(P("brandName"), false, "(?i)mercedes"), QParser.Parse("brandName~=(?i)mercedes"));
        Assert.Equal(new QPattern(P("name"), true, "^(a|b)$"), QParser.Parse("name!~=^(a|b)$"));
    }

    [Fact]
    public void And_binds_tighter_than_or_and_parentheses_group()
    {
        var a = new QExists(P("a"), false);
        var b = new QExists(P("b"), false);
        var c = new QExists(P("c"), false);
        Assert.Equal(new QLogical(false, [new QLogical(true, [a, b]), c]), QParser.Parse("a;b|c"));
        Assert.Equal(new QLogical(true, [a, new QLogical(false, [b, c])]), QParser.Parse("a;(b|c)"));
        Assert.Equal(new QLogical(false, [new QLogical(true, [new QComparison(P("temperature"), QOperator.GreaterOrEqual, new QNumber(20)), new QComparison(P("temperature"), QOperator.LessOrEqual, new QNumber(25))]), new QComparison(P("capacity"), QOperator.LessOrEqual, new QNumber(10))]),
            QParser.Parse("(temperature>=20;temperature<=25)|capacity<=10"));
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("a==", 3)]
    [InlineData("a>>1", 2)]
    [InlineData("(a==1", 5)]
    [InlineData("a==1)", 4)]
    [InlineData("a==Mercedes", 3)]
    [InlineData("a==\"open", 3)]
    [InlineData("a>1,2", 3)]
    [InlineData("a[x==1", 6)]
    [InlineData("a~=(unclosed", 3)]
    [InlineData(";a", 0)]
    public void Malformed_expressions_are_BadRequestData_naming_the_position(string q, int position)
    {
        var ex = Assert.Throws<NgsiException>(() => QParser.Parse(q));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
        Assert.Contains($"at position {position}", ex.Message, StringComparison.Ordinal);
    }

    private static readonly Gen<QPath> PathGen = Gen.Select(
        Gen.OneOfConst("speed", "temperature", "a", "refX", "name2", "風速").Array[1, 3],
        Gen.OneOfConst("x", "y", "city").Array[0, 2]).Select((n, m) => new QPath(n, m));

    private static readonly Gen<QValue> SingleGen = Gen.OneOf<QValue>(
        Gen.Double[-1e6, 1e6].Select(d => (QValue)new QNumber(d)),
        Gen.Int.Select(i => (QValue)new QNumber(i)),
        Gen.String[Gen.Char["a\"\\ b;|()é"], 0, 8].Select(s => (QValue)new QString(s)),
        Gen.Bool.Select(b => (QValue)new QBoolean(b)),
        Gen.OneOfConst("2026-11-25T08:00:00Z", "2026-11-25", "12:30:00Z", "2026-01-01T00:00:00.5+09:00").Select(t => (QValue)new QDateTime(t)),
        Gen.OneOfConst("urn:ngsi-ld:Vehicle:1", "https://example.org/a?b=c").Select(u => (QValue)new QUri(u)));

    private static readonly Gen<QExpression> ExpressionGen = Gen.Recursive<QExpression>((depth, inner) =>
    {
        var comparison = Gen.Select(PathGen, Gen.Enum<QOperator>(), SingleGen).Select((p, o, v) => (QExpression)new QComparison(p, o, v));
        var listOrRange = Gen.Select(PathGen, Gen.Bool, SingleGen.Array[2, 4]).Select((p, eq, vs) =>
            (QExpression)new QComparison(p, eq ? QOperator.Equal : QOperator.NotEqual, vs.Length == 2 ? new QRange(vs[0], vs[1]) : new QList(vs)));
        var exists = Gen.Select(PathGen, Gen.Bool).Select((p, n) => (QExpression)new QExists(p, n));
        var pattern = Gen.Select(PathGen, Gen.Bool, Gen.OneOfConst("^a.*", "(?i)mercedes", "[0-9]+", "(a|b)c")).Select((p, n, r) => (QExpression)new QPattern(p, n, r));
        var leaf = Gen.OneOf(comparison, listOrRange, exists, pattern);
        if (depth > 3)
        {
            return leaf;
        }

        // A logical term directly inside one of the same kind prints with parentheses and parses back nested.
        var logical = Gen.Select(Gen.Bool, inner.Array[2, 3]).Select((and, terms) => (QExpression)new QLogical(and, terms));
        return Gen.Frequency((3, leaf), (1, logical));
    });

    [Fact]
    public void Printing_and_parsing_a_random_tree_gives_the_same_tree() =>
        ExpressionGen.Sample(tree => Assert.Equal(tree, QParser.Parse(tree.ToString())), iter: 5_000);

    [Fact]
    public void No_input_makes_the_parser_throw_anything_but_BadRequestData() =>
        Gen.String[Gen.Char["ab.[]()!=<>~;|,\"\\ 0-9:T-"], 0, 40].Sample(q =>
        {
            try
            {
                var parsed = QParser.Parse(q);
                Assert.Equal(parsed, QParser.Parse(parsed.ToString()));
            }
            catch (NgsiException ex)
            {
                Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
            }
        }, iter: 50_000);
}
