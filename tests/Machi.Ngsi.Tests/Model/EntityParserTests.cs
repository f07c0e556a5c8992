using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;

namespace Machi.Ngsi.Tests.Model;

public class EntityParserTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 9, 0, 0, TimeSpan.Zero);

    private static Entity Parse(string json) => EntityParser.ParseEntity(Element(json), LdContext.Core, Now);

    private static JsonElement Element(string json) => JsonDocument.Parse(json).RootElement;

    private static string Render(Entity e, Representation format, bool sysAttrs = false, string? lang = null)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, EntityRenderer.WriterOptions))
        {
            EntityRenderer.WriteEntity(w, e, new RenderOptions(LdContext.Core) { Format = format, SysAttrs = sysAttrs, Lang = LanguagePreference.Parse(lang) });
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [Fact]
    public void Normalized_entity_with_every_attribute_type_renders_back_unchanged()
    {
        const string json = """
            {"id":"urn:ngsi-ld:Vehicle:A4567","type":"Vehicle",
             "brandName":{"type":"Property","value":"Mercedes"},
             "isParked":{"type":"Relationship","object":"urn:ngsi-ld:OffStreetParking:Downtown1","objectType":"OffStreetParking","observedAt":"2017-07-29T12:00:04Z","providedBy":{"type":"Relationship","object":"urn:ngsi-ld:Person:Bob"}},
             "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.93,37.49]}},
             "street":{"type":"LanguageProperty","languageMap":{"ja":"大町通り","en":"Omachi Street"}},
             "category":{"type":"VocabProperty","vocab":"municipalServices"},
             "config":{"type":"JsonProperty","json":{"a":[1,2],"b":{"c":null}}},
             "tyreTreadDepths":{"type":"ListProperty","valueList":[300,300,120],"unitCode":"MMT"},
             "route":{"type":"ListRelationship","objectList":[{"object":"urn:ngsi-ld:City:Aizu"}]},
             "speed":[{"type":"Property","value":55,"datasetId":"urn:ngsi-ld:Dataset:gps"},{"type":"Property","value":54.5,"datasetId":"urn:ngsi-ld:Dataset:obd"}]}
            """;
        var rendered = JsonNode.Parse(Render(Parse(json), Representation.Normalized))!;
        var expected = JsonNode.Parse(json)!;
        Assert.True(JsonNode.DeepEquals(expected, rendered), rendered.ToJsonString());
    }

    [Fact]
    public void Concise_input_infers_attribute_types_as_clause_4_5_9_describes()
    {
        var e = Parse("""
            {"id":"urn:ngsi-ld:Vehicle:B","type":"Vehicle","speed":80,"name":{"value":"Plow 1","observedAt":"2026-01-01T00:00:00Z"},
             "owner":{"object":"urn:ngsi-ld:Person:1"},"location":{"type":"Point","coordinates":[139.9,37.5]},
             "label":{"languageMap":{"ja":"一号車"}},"kind":{"vocab":"plow"},"raw":{"json":{"x":1}},"list":{"valueList":[1,2]},
             "stops":{"objectList":[{"object":"urn:a:b"}]},"tags":["a","b"],"meta":{"deep":{"deeper":1}}}
            """);
        Assert.Equal(AttributeKind.Property, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/speed"][0].Kind);
        Assert.Equal(AttributeKind.Property, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/name"][0].Kind);
        Assert.Equal(AttributeKind.Relationship, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/owner"][0].Kind);
        Assert.Equal(AttributeKind.GeoProperty, e.Attributes.Single(a => a.Key.EndsWith("location", StringComparison.Ordinal)).Value[0].Kind);
        Assert.Equal(AttributeKind.LanguageProperty, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/label"][0].Kind);
        Assert.Equal(AttributeKind.VocabProperty, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/kind"][0].Kind);
        Assert.Equal(AttributeKind.JsonProperty, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/raw"][0].Kind);
        Assert.Equal(AttributeKind.ListProperty, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/list"][0].Kind);
        Assert.Equal(AttributeKind.ListRelationship, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/stops"][0].Kind);
        Assert.Equal("[\"a\",\"b\"]", e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/tags"][0].Payload.ToJsonString());
        Assert.Equal(AttributeKind.Property, e.Attributes["https://uri.etsi.org/ngsi-ld/default-context/meta"][0].Kind);
    }

    [Fact]
    public void Concise_output_parsed_again_gives_the_same_normalized_entity()
    {
        var original = Parse("""
            {"id":"urn:ngsi-ld:X:1","type":"X","a":{"type":"Property","value":{"nested":true},"unitCode":"C62"},
             "b":{"type":"Relationship","object":"urn:x:y"},"c":{"type":"Property","value":3},
             "d":{"type":"GeoProperty","value":{"type":"LineString","coordinates":[[139.9,37.5],[139.91,37.51]]}}}
            """);
        var concise = Render(original, Representation.Concise);
        var again = EntityParser.ParseEntity(Element(concise), LdContext.Core, Now);
        Assert.Equal(Render(original, Representation.Normalized), Render(again, Representation.Normalized));
    }

    [Fact]
    public void Lang_selects_one_language_and_renders_a_Property_with_lang()
    {
        var e = Parse("""{"id":"urn:ngsi-ld:X:1","type":"X","street":{"type":"LanguageProperty","languageMap":{"ja":"大町通り","en":"Omachi Street"}}}""");
        Assert.Contains("\"street\":{\"type\":\"Property\",\"value\":\"Omachi Street\",\"lang\":\"en\"}", Render(e, Representation.Normalized, lang: "en"), StringComparison.Ordinal);
        Assert.Contains("\"street\":\"大町通り\"", Render(e, Representation.KeyValues, lang: "fr,ja;q=0.5"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"X"}""", "no 'id'")]
    [InlineData("""{"id":"not a uri","type":"X"}""", "not a URI")]
    [InlineData("""{"id":"urn:x:1"}""", "no 'type'")]
    [InlineData("""{"id":"urn:x:1","type":3}""", "'type'")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":null}""", "null")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":{"type":"Relationship","object":"nope"}}""", "URI")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":{"type":"Property"}}""", "no value")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":{"type":"Magic","value":1}}""", "unknown type")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":{"type":"Property","value":1,"observedAt":"yesterday"}}""", "observedAt")]
    [InlineData("""{"id":"urn:x:1","type":"X","location":{"type":"GeoProperty","value":{"type":"Point"}}}""", "GeoProperty")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":[{"type":"Property","value":1},{"type":"Property","value":2}]}""", "more than one instance")]
    [InlineData("""{"id":"urn:x:1","type":"X","a b":1}""", "not a valid attribute name")]
    [InlineData("""{"id":"urn:x:1","type":"X","scope":"no-slash"}""", "scope")]
    [InlineData("""{"id":"urn:x:1","type":"X","a":"urn:ngsi-ld:null"}""", "merge")]
    public void Invalid_entities_are_rejected_with_a_reason(string json, string reason)
    {
        var ex = Assert.Throws<NgsiException>(() => Parse(json));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stored_form_round_trips_every_member()
    {
        var e = Parse("""
            {"id":"urn:ngsi-ld:X:1","type":["X","Y"],"scope":["/Aizu/Kita","/Aizu"],
             "a":{"type":"Relationship","object":["urn:a:1","urn:a:2"],"objectType":"Z","datasetId":"urn:d:1","sub":{"type":"Property","value":1,"subsub":{"type":"Property","value":"x"}}},
             "l":{"type":"ListProperty","valueList":[1],"valueType":"Integer"}}
            """);
        var decoded = EntityCodec.Decode(EntityCodec.Encode(e));
        Assert.Equal(Render(e, Representation.Normalized, sysAttrs: true), Render(decoded, Representation.Normalized, sysAttrs: true));
    }

    [Fact]
    public void Any_JSON_body_either_parses_or_fails_with_an_NGSI_LD_error()
    {
        Gen.Recursive<JsonNode?>((depth, inner) =>
        {
            var leaf = Gen.OneOf(
                Gen.Bool.Select(_ => (JsonNode?)null),
                Gen.Int.Select(i => (JsonNode?)JsonValue.Create(i)),
                Gen.Double.Select(d => double.IsFinite(d) ? (JsonNode?)JsonValue.Create(d) : JsonValue.Create(0)),
                Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
                Gen.OneOfConst("urn:ngsi-ld:X:1", "X", "Property", "Relationship", "GeoProperty", "Point", "value", "object", "type", "id",
                    "urn:ngsi-ld:null", "2026-01-01T00:00:00Z", "", "a b", "/scope").Select(s => (JsonNode?)JsonValue.Create(s)));
            if (depth > 4)
            {
                return leaf;
            }

            var key = Gen.OneOfConst("id", "type", "value", "object", "languageMap", "vocab", "json", "valueList", "objectList", "datasetId",
                "observedAt", "unitCode", "objectType", "scope", "location", "coordinates", "name", "a", "@context", "@id");
            var obj = Gen.Select(key, inner).Array[0, 6].Select(pairs =>
            {
                var o = new JsonObject();
                foreach (var (k, v) in pairs)
                {
                    o[k] = v?.DeepClone();
                }

                return (JsonNode?)o;
            });
            var arr = inner.Array[0, 4].Select(items => (JsonNode?)new JsonArray(items.Select(i => i?.DeepClone()).ToArray()));
            return Gen.Frequency((3, leaf), (4, obj), (1, arr));
        }).Sample(node =>
        {
            try
            {
                var entity = EntityParser.ParseEntity(Element(node?.ToJsonString() ?? "null"), LdContext.Core, Now);
                foreach (var format in new[] { Representation.Normalized, Representation.Concise, Representation.KeyValues })
                {
                    JsonNode.Parse(Render(entity, format));
                }

                EntityCodec.Decode(EntityCodec.Encode(entity));
            }
            catch (NgsiException)
            {
            }
        }, iter: 20_000);
    }
}
