using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Query;
using static Machi.Ngsi.Tests.Query.QueryTestKit;

namespace Machi.Ngsi.Tests.Query;

public class TypeAndScopeQueryTests
{
    [Theory]
    [InlineData("Building,Vehicle", new[] { "Vehicle" }, true)]
    [InlineData("Building,Vehicle", new[] { "Device" }, false)]
    [InlineData("Building|Vehicle", new[] { "Building" }, true)]
    [InlineData("Building;Vehicle", new[] { "Building" }, false)]
    [InlineData("Building;Vehicle", new[] { "Vehicle", "Building" }, true)]
    [InlineData("(Building;Vehicle)|Device", new[] { "Device" }, true)]
    [InlineData("(Building;Vehicle)|Device", new[] { "Vehicle" }, false)]
    [InlineData("Building;(Vehicle|Device)", new[] { "Building", "Device" }, true)]
    [InlineData("Building;Vehicle|Device", new[] { "Device" }, true)]
    public void Type_selections_use_or_for_comma_and_bar_and_and_for_semicolon(string text, string[] types, bool expected)
    {
        var expression = TypeExpression.Parse(text).Expand(Expand);
        Assert.Equal(expected, expression.Matches(types.Select(Expand).ToArray()));
    }

    [Fact]
    public void A_plain_or_of_names_exposes_them_for_an_index()
    {
        Assert.Equal([Expand("Building"), Expand("Vehicle")], TypeExpression.Parse("Building,Vehicle").Expand(Expand).SimpleTypes);
        Assert.Equal(["A", "B", "C"], TypeExpression.Parse("A|(B,C)").SimpleTypes);
        Assert.Equal(["A"], TypeExpression.Parse("A").SimpleTypes);
        Assert.Null(TypeExpression.Parse("(A;B)|C").SimpleTypes);
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("A,", 2)]
    [InlineData("(A;B", 4)]
    [InlineData("A)", 1)]
    [InlineData("A;;B", 2)]
    [InlineData("A B", 1)]
    public void Malformed_type_selections_are_BadRequestData_naming_the_position(string text, int position)
    {
        var ex = Assert.Throws<NgsiException>(() => TypeExpression.Parse(text));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
        Assert.Contains($"at position {position}", ex.Message, StringComparison.Ordinal);
    }

    private static readonly Gen<TypeExpression> TypeGen = Gen.Recursive<TypeExpression>((depth, inner) =>
    {
        var name = Gen.OneOfConst("Vehicle", "Building", "ex:Shelter", "https://example.org/T#x", "避難所").Select(n => (TypeExpression)new TypeName(n));
        return depth > 3 ? name : Gen.Frequency((3, name), (1, Gen.Select(Gen.Bool, inner.Array[2, 3]).Select((and, terms) => (TypeExpression)new TypeLogical(and, terms))));
    });

    [Fact]
    public void Printing_and_parsing_a_random_type_selection_gives_the_same_tree() =>
        TypeGen.Sample(t => Assert.Equal(t, TypeExpression.Parse(t.ToString())), iter: 5_000);

    [Theory]
    [InlineData("/Madrid/Gardens/ParqueNorte", "/Madrid/Gardens/ParqueNorte", true)]
    [InlineData("/Madrid/Gardens/ParqueNorte", "/Madrid/Gardens", false)]
    [InlineData("/Madrid/Gardens", "/Madrid/Gardens/ParqueNorte", false)]
    [InlineData("/Madrid/#", "/Madrid", true)]
    [InlineData("/Madrid/#", "/Madrid/Gardens/ParqueNorte", true)]
    [InlineData("/Madrid/#", "/MadridNorte", false)]
    [InlineData("/Madrid/+/ParqueNorte", "/Madrid/Gardens/ParqueNorte", true)]
    [InlineData("/Madrid/+/ParqueNorte", "/Madrid/ParqueNorte", false)]
    [InlineData("/Madrid/+", "/Madrid/Gardens", true)]
    [InlineData("/Madrid/+", "/Madrid/Gardens/ParqueNorte", false)]
    [InlineData("/#", "/Anything/At/All", true)]
    [InlineData("/CompanyA/#,/CompanyB/+/Department1", "/CompanyB/Spain/Department1", true)]
    [InlineData("/CompanyA/#|/CompanyB/+/Department1", "/CompanyA/Spain", true)]
    [InlineData("/CompanyA/#,/CompanyB/+/Department1", "/CompanyC", false)]
    [InlineData("/会津/#", "/会津/喜多方", true)]
    public void Scope_patterns_match_as_clause_4_19_describes(string query, string scope, bool expected) =>
        Assert.Equal(expected, ScopeQuery.Parse(query).Matches([scope]));

    [Fact]
    public void An_and_of_scopes_needs_each_pattern_matched_by_some_scope_of_the_entity()
    {
        var query = ScopeQuery.Parse("/Aizu/#;/Utilities/Water");
        Assert.True(query.Matches(["/Aizu/Kita", "/Utilities/Water"]));
        Assert.False(query.Matches(["/Aizu/Kita"]));
        Assert.False(query.Matches(null));
        Assert.False(ScopeQuery.Parse("/#").Matches(null));
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("Madrid", 0)]
    [InlineData("/Madrid//Gardens", 8)]
    [InlineData("/Madrid/#/Gardens", 9)]
    [InlineData("/Mad#rid", 1)]
    [InlineData("/a,", 3)]
    [InlineData("(/a", 3)]
    public void Malformed_scope_queries_are_BadRequestData_naming_the_position(string text, int position)
    {
        var ex = Assert.Throws<NgsiException>(() => ScopeQuery.Parse(text));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
        Assert.Contains($"at position {position}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Printing_and_parsing_a_scope_query_gives_the_same_tree() =>
        Gen.Select(Gen.OneOfConst("/a", "/a/#", "/a/+/c", "/#", "/会津/喜多方").Array[1, 4], Gen.Bool).Sample((patterns, and) =>
        {
            var query = ScopeQuery.Parse(string.Join(and ? ";" : "|", patterns));
            Assert.Equal(query, ScopeQuery.Parse(query.ToString()));
        }, iter: 2_000);
}
