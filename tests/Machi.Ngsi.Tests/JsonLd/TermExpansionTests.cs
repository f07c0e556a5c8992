using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

/// <summary>Expanding and compacting terms, with the Vehicle/Parking examples of the NGSI-LD specification.</summary>
public sealed class TermExpansionTests
{
    private const string Default = "https://uri.etsi.org/ngsi-ld/default-context/";
    private const string NgsiLd = "https://uri.etsi.org/ngsi-ld/";

    // The user context of the specification's Vehicle example (annex C), inline.
    private const string VehicleContext = """
        {
          "Vehicle": "http://example.org/vehicle/Vehicle",
          "brandName": "http://example.org/vehicle/brandName",
          "speed": "http://example.org/vehicle/speed",
          "isParked": { "@type": "@id", "@id": "http://example.org/common/isParked" },
          "OffStreetParking": "http://example.org/parking/OffStreetParking",
          "category": { "@id": "http://example.org/vehicle/category", "@type": "@vocab" },
          "commercial": "http://example.org/vehicle/commercial"
        }
        """;

    [Theory]
    [InlineData("Vehicle", Default + "Vehicle")]
    [InlineData("brandName", Default + "brandName")]
    [InlineData("location", NgsiLd + "location")]
    [InlineData("observedAt", NgsiLd + "observedAt")]
    [InlineData("Property", NgsiLd + "Property")]
    [InlineData("object", NgsiLd + "hasObject")]
    [InlineData("Point", "https://purl.org/geojson/vocab#Point")]
    [InlineData("description", "http://purl.org/dc/terms/description")]
    [InlineData("type", "@type")]
    [InlineData("id", "@id")]
    public void Core_context_alone_expands_core_terms_and_puts_other_names_beneath_the_default_vocab(
        string term, string iri)
    {
        Assert.Equal(iri, LdContext.Core.ExpandTerm(term));
    }

    [Theory]
    [InlineData(NgsiLd + "location", "location")]
    [InlineData(NgsiLd + "hasObject", "object")]
    [InlineData(Default + "brandName", "brandName")]
    [InlineData(NgsiLd + "somethingNew", "ngsi-ld:somethingNew")]
    [InlineData("https://purl.org/geojson/vocab#Polygon", "Polygon")]
    [InlineData("https://purl.org/geojson/vocab#elevation", "geojson:elevation")]
    [InlineData("http://example.org/vehicle/speed", "http://example.org/vehicle/speed")]
    [InlineData("@type", "type")]
    public void Core_context_alone_compacts_to_core_terms_vocab_names_or_compact_iris(string iri, string compacted)
    {
        Assert.Equal(compacted, LdContext.Core.CompactIri(iri));
    }

    [Fact]
    public void Default_context_iris_compact_to_plain_names_rather_than_to_an_ngsi_ld_compact_iri()
    {
        // "ngsi-ld:" is a prefix of the default vocab too; the plain name is what clients sent.
        Assert.Equal("speed", LdContext.Core.CompactIri(Default + "speed"));
    }

    [Fact]
    public void User_context_terms_expand_to_their_iris_and_compact_back()
    {
        var context = new ContextKit().Resolve(VehicleContext);

        Assert.Equal("http://example.org/vehicle/Vehicle", context.ExpandTerm("Vehicle"));
        Assert.Equal("http://example.org/vehicle/brandName", context.ExpandTerm("brandName"));
        Assert.Equal("http://example.org/common/isParked", context.ExpandTerm("isParked"));
        Assert.Equal("brandName", context.CompactIri("http://example.org/vehicle/brandName"));
        Assert.Equal("OffStreetParking", context.CompactIri("http://example.org/parking/OffStreetParking"));
    }

    [Fact]
    public void Names_the_user_context_does_not_define_still_expand_beneath_the_default_vocab()
    {
        var context = new ContextKit().Resolve(VehicleContext);

        Assert.Equal(Default + "colour", context.ExpandTerm("colour"));
        Assert.Equal("colour", context.CompactIri(Default + "colour"));
        Assert.Equal(NgsiLd + "location", context.ExpandTerm("location"));
    }

    [Fact]
    public void Term_definitions_tell_vocab_terms_and_relationship_objects_apart()
    {
        var context = new ContextKit().Resolve(VehicleContext);

        Assert.True(context.IsVocabTerm("category"));
        Assert.True(context.IsVocabTerm("vocab"));
        Assert.True(context.IsVocabTerm("objectType"));
        Assert.False(context.IsVocabTerm("brandName"));
        Assert.True(context.TryGetTermDefinition("isParked", out var isParked));
        Assert.Equal("@id", isParked.TypeMapping);
        Assert.True(context.TryGetTermDefinition("languageMap", out var languageMap));
        Assert.Equal(LdContainer.Language, languageMap.Container);
        Assert.True(context.TryGetTermDefinition("valueList", out var valueList));
        Assert.Equal(LdContainer.List, valueList.Container);
        Assert.True(context.TryGetTermDefinition("observedAt", out var observedAt));
        Assert.Equal(NgsiLd + "DateTime", observedAt.TypeMapping);
    }

    [Fact]
    public void Compact_iris_with_a_known_prefix_expand_and_iris_compact_with_the_longest_prefix()
    {
        var context = new ContextKit().Resolve("""
            { "ex": "http://example.org/", "veh": "http://example.org/vehicle/" }
            """);

        Assert.Equal("http://example.org/vehicle/speed", context.ExpandTerm("veh:speed"));
        Assert.Equal("http://example.org/vehicle/speed", context.ExpandTerm("ex:vehicle/speed"));
        Assert.Equal("veh:speed", context.CompactIri("http://example.org/vehicle/speed"));
        Assert.Equal("ex:parking/level", context.CompactIri("http://example.org/parking/level"));
        Assert.Equal(NgsiLd + "speed", context.ExpandTerm("ngsi-ld:speed"));
    }

    [Theory]
    [InlineData("http://example.org/speed")]
    [InlineData("urn:ngsi-ld:Vehicle:A4567")]
    [InlineData("unknown:speed")]
    [InlineData("_:b0")]
    public void Absolute_iris_and_unknown_prefixes_stay_as_they_are(string iri)
    {
        var context = new ContextKit().Resolve(VehicleContext);

        Assert.Equal(iri, context.ExpandTerm(iri));
        Assert.Equal(iri, context.CompactIri(iri));
    }

    [Fact]
    public void A_term_may_use_a_prefix_defined_in_the_same_context_or_in_the_core_context()
    {
        var context = new ContextKit().Resolve("""
            {
              "name": "schema:name",
              "schema": "https://schema.org/",
              "reliability": "ngsi-ld:reliability",
              "installedAt": { "@id": "schema:installedAt", "@type": "DateTime" }
            }
            """);

        Assert.Equal("https://schema.org/name", context.ExpandTerm("name"));
        Assert.Equal(NgsiLd + "reliability", context.ExpandTerm("reliability"));
        Assert.True(context.TryGetTermDefinition("installedAt", out var installedAt));
        Assert.Equal(NgsiLd + "DateTime", installedAt.TypeMapping);
    }

    [Fact]
    public void Core_terms_cannot_be_overridden_by_a_user_context()
    {
        var context = new ContextKit().Resolve("""
            {
              "location": "http://example.org/myLocation",
              "type": "http://example.org/myType",
              "ngsi-ld": "http://example.org/not-etsi/"
            }
            """);

        Assert.Equal(NgsiLd + "location", context.ExpandTerm("location"));
        Assert.Equal("@type", context.ExpandTerm("type"));
        Assert.Equal(NgsiLd + "observedAt", context.ExpandTerm("ngsi-ld:observedAt"));
        Assert.Equal("location", context.CompactIri(NgsiLd + "location"));
    }

    [Fact]
    public void A_user_term_for_an_iri_the_core_names_compacts_to_the_core_term()
    {
        var context = new ContextKit().Resolve("""{ "where": "https://uri.etsi.org/ngsi-ld/location" }""");

        Assert.Equal(NgsiLd + "location", context.ExpandTerm("where"));
        Assert.Equal("location", context.CompactIri(NgsiLd + "location"));
    }

    [Fact]
    public void Two_user_terms_for_one_iri_compact_to_the_shortest()
    {
        var context = new ContextKit().Resolve("""
            { "vehicleSpeed": "http://example.org/speed", "velocity": "http://example.org/speed", "spd": "http://example.org/speed" }
            """);

        Assert.Equal("spd", context.CompactIri("http://example.org/speed"));
    }

    [Fact]
    public void A_user_vocab_takes_undefined_names_and_gives_them_back()
    {
        var context = new ContextKit().Resolve("""{ "@vocab": "https://smartdatamodels.org/dataModel.Transportation/" }""");

        Assert.Equal("https://smartdatamodels.org/dataModel.Transportation/Vehicle", context.ExpandTerm("Vehicle"));
        Assert.Equal("Vehicle", context.CompactIri("https://smartdatamodels.org/dataModel.Transportation/Vehicle"));
        Assert.Equal(NgsiLd + "location", context.ExpandTerm("location"));
        Assert.Equal("speed", LdContext.Core.CompactIri(Default + "speed"));
    }

    [Fact]
    public void A_null_context_in_an_array_discards_the_contexts_before_it()
    {
        var context = new ContextKit().Resolve("""
            [ { "Vehicle": "http://example.org/vehicle/Vehicle" }, null, { "speed": "http://example.org/vehicle/speed" } ]
            """);

        Assert.Equal(Default + "Vehicle", context.ExpandTerm("Vehicle"));
        Assert.Equal("http://example.org/vehicle/speed", context.ExpandTerm("speed"));
    }

    [Fact]
    public void Later_contexts_in_an_array_override_earlier_unprotected_terms()
    {
        var context = new ContextKit().Resolve("""
            [ { "speed": "http://example.org/a/speed" }, { "speed": "http://example.org/b/speed" } ]
            """);

        Assert.Equal("http://example.org/b/speed", context.ExpandTerm("speed"));
    }

    [Fact]
    public void A_term_mapped_to_null_falls_back_to_the_vocab()
    {
        var context = new ContextKit().Resolve("""
            [ { "speed": "http://example.org/a/speed" }, { "speed": null } ]
            """);

        Assert.Equal(Default + "speed", context.ExpandTerm("speed"));
    }

    [Fact]
    public void Expansion_and_compaction_answer_the_same_from_their_caches()
    {
        var context = new ContextKit().Resolve(VehicleContext);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("http://example.org/vehicle/speed", context.ExpandTerm("speed"));
            Assert.Equal("speed", context.CompactIri("http://example.org/vehicle/speed"));
        }
    }

    [Fact]
    public void The_value_echoes_the_clients_context_and_can_be_attached_to_a_response()
    {
        var context = new ContextKit().Resolve(VehicleContext);
        var response = new System.Text.Json.Nodes.JsonObject { ["@context"] = context.Value };
        var again = new System.Text.Json.Nodes.JsonObject { ["@context"] = context.Value };

        Assert.Equal("http://example.org/vehicle/Vehicle", (string?)response["@context"]!["Vehicle"]);
        Assert.Equal(again.ToJsonString(), response.ToJsonString());
        Assert.NotNull(context.ValueJson);
        Assert.False(context.IsCore);
        Assert.Null(LdContext.Core.Value);
        Assert.True(LdContext.Core.IsCore);
    }
}
