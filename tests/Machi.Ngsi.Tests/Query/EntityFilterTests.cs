using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using static Machi.Ngsi.Tests.Query.QueryTestKit;

namespace Machi.Ngsi.Tests.Query;

public class EntityFilterTests
{
    private static readonly Entity Shelter = Entity("""
        {"id":"urn:ngsi-ld:Shelter:aizu-001","type":["Shelter","School"],"scope":["/Aizu/Kita","/Disaster/Evacuation"],
         "name":{"type":"Property","value":"Kita School"},
         "capacity":{"type":"Property","value":300},
         "location":[{"type":"GeoProperty","value":{"type":"Point","coordinates":[0,0]}},
                     {"type":"GeoProperty","datasetId":"urn:ngsi-ld:Dataset:entrance","value":{"type":"Point","coordinates":[139.93,37.49]}}]}
        """);

    private static EntitySelector Selector(string? id = null, string? pattern = null, string? type = null) =>
        new(id is null ? null : [id], pattern is null ? null : EntitySelector.CompileIdPattern(pattern),
            type is null ? null : TypeExpression.Parse(type).Expand(Expand));

    [Fact]
    public void Selectors_are_ored_and_the_members_of_one_selector_anded()
    {
        Assert.True(new EntityFilter { Selectors = [Selector(type: "Vehicle"), Selector(type: "Shelter")] }.Matches(Shelter));
        Assert.False(new EntityFilter { Selectors = [Selector(id: "urn:ngsi-ld:Shelter:aizu-001", type: "Vehicle")] }.Matches(Shelter));
        Assert.True(new EntityFilter { Selectors = [Selector(pattern: "^urn:ngsi-ld:Shelter:aizu-", type: "Shelter;School")] }.Matches(Shelter));
        Assert.False(new EntityFilter { Selectors = [Selector(pattern: "^urn:ngsi-ld:Shelter:tokyo-")] }.Matches(Shelter));
        Assert.True(new EntityFilter { Selectors = [Selector(pattern: "aizu")] }.Matches(Shelter));
    }

    [Fact]
    public void Attrs_needs_at_least_one_of_the_attributes()
    {
        Assert.True(new EntityFilter { Attrs = [Expand("speed"), Expand("capacity")] }.Matches(Shelter));
        Assert.False(new EntityFilter { Attrs = [Expand("speed")] }.Matches(Shelter));
    }

    [Fact]
    public void Every_part_given_must_hold()
    {
        var filter = new EntityFilter
        {
            Selectors = [Selector(type: "Shelter")],
            Q = Q("capacity>=200"),
            Scope = ScopeQuery.Parse("/Aizu/#"),
            Geo = GeoQuery.Parse("near;maxDistance==1000", "Point", "[139.93,37.495]", null, Expand),
        };
        Assert.True(filter.Matches(Shelter));
        Assert.False((filter with { Q = Q("capacity>=400") }).Matches(Shelter));
        Assert.False((filter with { Scope = ScopeQuery.Parse("/Tokyo/#") }).Matches(Shelter));
        Assert.False((filter with { Geo = GeoQuery.Parse("near;maxDistance==100", "Point", "[139.93,37.495]", null, Expand) }).Matches(Shelter));
        Assert.True(new EntityFilter().Matches(Shelter));
    }

    [Fact]
    public void Any_instance_of_the_GeoProperty_may_satisfy_the_geo_query()
    {
        Assert.True(new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==10", "Point", "[0,0]", null, Expand) }.Matches(Shelter));
        Assert.True(new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==10", "Point", "[139.93,37.49]", null, Expand) }.Matches(Shelter));
        Assert.False(new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==10", "Point", "[10,10]", null, Expand) }.Matches(Shelter));
        Assert.False(new EntityFilter { Geo = GeoQuery.Parse("near;maxDistance==10", "Point", "[0,0]", "entrance", Expand) }.Matches(Shelter));
    }

    [Theory]
    [InlineData("(a)\\1")]
    [InlineData("[unclosed")]
    [InlineData("")]
    public void An_idPattern_that_is_not_a_linear_time_regular_expression_is_BadRequestData(string pattern)
    {
        var ex = Assert.Throws<NgsiException>(() => EntitySelector.CompileIdPattern(pattern));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
    }

    [Fact]
    public void A_pathological_idPattern_runs_in_linear_time()
    {
        var selector = Selector(pattern: "^(a+)+$");
        var id = "urn:" + new string('a', 50_000) + "!";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.False(selector.Matches(new Entity(id, [Expand("T")])));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
    }

    private static string Render(Entity entity, Representation format, string? pick = null, string? omit = null, bool geoJson = false, bool sysAttrs = false)
    {
        var (p, o) = Projection.Parse(pick, omit, Expand);
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, EntityRenderer.WriterOptions))
        {
            EntityRenderer.WriteEntity(w, entity, new RenderOptions(LdContext.Core)
            {
                Format = format,
                Pick = p,
                Omit = o,
                SysAttrs = sysAttrs,
                GeometryProperty = geoJson ? Expand("location") : null,
            });
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [Theory]
    [InlineData(Representation.Normalized)]
    [InlineData(Representation.Concise)]
    [InlineData(Representation.KeyValues)]
    public void Pick_returns_only_the_named_members_in_every_representation(Representation format)
    {
        var json = JsonNode.Parse(Render(Shelter, format, pick: "id,name"))!.AsObject();
        Assert.Equal(["id", "name"], json.Select(p => p.Key));
        json = JsonNode.Parse(Render(Shelter, format, pick: "capacity"))!.AsObject();
        Assert.Equal(["capacity"], json.Select(p => p.Key));
    }

    [Theory]
    [InlineData(Representation.Normalized)]
    [InlineData(Representation.Concise)]
    [InlineData(Representation.KeyValues)]
    public void Omit_leaves_out_the_named_members_in_every_representation(Representation format)
    {
        var json = JsonNode.Parse(Render(Shelter, format, omit: "type,scope,location"))!.AsObject();
        Assert.Equal(["id", "name", "capacity"], json.Select(p => p.Key));
    }

    [Fact]
    public void Pick_and_omit_apply_to_GeoJSON_properties_and_the_feature_id()
    {
        var feature = JsonNode.Parse(Render(Shelter, Representation.Normalized, pick: "name", geoJson: true))!.AsObject();
        Assert.Null(feature["id"]);
        Assert.NotNull(feature["geometry"]);
        Assert.Equal(["name"], feature["properties"]!.AsObject().Select(p => p.Key));
        feature = JsonNode.Parse(Render(Shelter, Representation.Normalized, omit: "capacity,location", geoJson: true))!.AsObject();
        Assert.Equal("urn:ngsi-ld:Shelter:aizu-001", (string?)feature["id"]);
        Assert.Equal(["type", "scope", "name"], feature["properties"]!.AsObject().Select(p => p.Key));
    }

    [Fact]
    public void System_timestamps_can_be_omitted()
    {
        var json = JsonNode.Parse(Render(Shelter, Representation.Normalized, omit: "modifiedAt,location,name,capacity", sysAttrs: true))!.AsObject();
        Assert.Equal(["id", "type", "scope", "createdAt"], json.Select(p => p.Key));
    }

    [Theory]
    [InlineData("name", "capacity")]
    [InlineData(null, "")]
    [InlineData("a,,b", null)]
    [InlineData("a{b}", null)]
    public void Invalid_projections_are_BadRequestData(string? pick, string? omit)
    {
        var ex = Assert.Throws<NgsiException>(() => Projection.Parse(pick, omit, Expand));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
    }

    // Random text to every parser of this folder: either a value or BadRequestData, never another exception.
    private static readonly Gen<string> Noise = Gen.String[Gen.Char["ab/#+;|,()[]{}.:=~!<>\"\\ 0-9-eE"], 0, 30];

    private static void OnlyBadRequestData(Action parse)
    {
        try
        {
            parse();
        }
        catch (NgsiException ex)
        {
            Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
        }
    }

    [Fact]
    public void No_input_makes_any_query_parser_throw_anything_but_BadRequestData() =>
        Gen.Select(Noise, Noise, Gen.OneOfConst("Point", "Polygon", "LineString", "MultiPoint", "x", ""), Noise).Sample((a, b, geometry, c) =>
        {
            OnlyBadRequestData(() => TypeExpression.Parse(a).Expand(Expand).Matches([a]));
            OnlyBadRequestData(() => ScopeQuery.Parse(a).Matches([b]));
            OnlyBadRequestData(() => GeoQuery.Parse(a, geometry, b, c, Expand));
            OnlyBadRequestData(() => GeoQuery.Parse("near;maxDistance==" + a, "Point", "[" + b + "]", null, Expand));
            OnlyBadRequestData(() => GeoQuery.Parse("within", geometry, "[[" + b + "]]", null, Expand));
            OnlyBadRequestData(() => Projection.Parse(a, null, Expand));
            OnlyBadRequestData(() => EntitySelector.CompileIdPattern(a));
            OnlyBadRequestData(() => QEvaluator.Matches(Shelter, QExpressions.Expand(QParser.Parse(a), Expand)));
        }, iter: 4_000);
}
