using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

/// <summary>Invariants of term expansion and context processing, over generated contexts and names.</summary>
public sealed class ContextPropertyTests
{
    private static readonly Gen<string> Name =
        Gen.Select(Gen.Char["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"], Gen.String["abcdefghijKLMNOP0123456789_-"])
            .Select((first, rest) => first + rest[..Math.Min(rest.Length, 15)]);

    private static readonly string[] Keys =
    [
        "@id", "@type", "@vocab", "@context", "@protected", "@container", "@reverse", "@import", "@version", "@base",
        "@prefix", "@language", "@nest", "@foo", "@", "", "ex", "ex:foo", "veh", "speed", "Vehicle", "a", "b", "type",
        "location", "http://example.org/x", "_:b", "ngsi-ld:speed",
    ];

    private static readonly string[] Scalars =
    [
        "null", "true", "false", "1.1", "42", "-0.5", "\"\"", "\"http://example.org/a\"", "\"http://example.org/\"",
        "\"ex:b\"", "\"a\"", "\"b:c\"", "\"@id\"", "\"@vocab\"", "\"@list\"", "\"@set\"", "\"@json\"", "\"@foo\"",
        "\"@context\"", "\"urn:x\"", "\"_:b\"", "\"ngsi-ld:\"", "\"DateTime\"", "\"//x\"", "\"relative.jsonld\"",
        "\"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld\"",
        "\"http://remote.example/ex.jsonld\"", "\"http://remote.example/loop.jsonld\"",
        "\"http://remote.example/garbage.jsonld\"", "\"http://remote.example/missing.jsonld\"",
        "\"http://broker.example:1026/ngsi-ld/v1/jsonldContexts/nope\"",
    ];

    private static readonly Gen<string> Json = Gen.Recursive<string>((depth, json) => depth >= 3
        ? Gen.OneOfConst(Scalars)
        : Gen.Frequency(
            (3, Gen.OneOfConst(Scalars)),
            (3, Gen.Select(Gen.OneOfConst(Keys), json).Array[0, 5]
                .Select(members => "{" + string.Join(",", members.Select(m => Quote(m.Item1) + ":" + m.Item2)) + "}")),
            (1, json.Array[0, 3].Select(items => "[" + string.Join(",", items) + "]"))));

    [Fact]
    public void Every_term_of_a_user_context_compacts_back_to_itself()
    {
        Gen.Select(Name.ArrayUnique[1, 25], Gen.Int[0, 3].Array[25])
            .Sample((names, styles) =>
            {
                var terms = names.Where(n => !LdContext.Core.TryGetTermDefinition(n, out _)).ToArray();
                var context = new JsonObject();
                for (var i = 0; i < terms.Length; i++)
                {
                    var iri = $"http://example.org/ns/{i}/{terms[i]}";
                    context[terms[i]] = styles[i] switch
                    {
                        0 => iri,
                        1 => new JsonObject { ["@id"] = iri },
                        2 => new JsonObject { ["@id"] = iri, ["@type"] = "@vocab" },
                        _ => new JsonObject { ["@id"] = iri, ["@type"] = "@id", ["@container"] = "@set" },
                    };
                }

                var resolved = new ContextKit().Resolve(context.ToJsonString());
                foreach (var term in terms)
                {
                    Assert.Equal(term, resolved.CompactIri(resolved.ExpandTerm(term)));
                }
            }, iter: 300);
    }

    [Fact]
    public void Compacting_then_expanding_gives_back_the_iri()
    {
        var context = new ContextKit().Resolve("""
            { "ex": "http://example.org/", "veh": "http://example.org/vehicle/", "speed": "http://example.org/vehicle/speed",
              "veh:odd": "http://example.org/vehicle/odd" }
            """);
        var bases = new[] { LdContext.DefaultVocab, "http://example.org/", "http://example.org/vehicle/", "https://uri.etsi.org/ngsi-ld/", "urn:ngsi-ld:" };

        Gen.Select(Gen.OneOfConst(bases), Gen.String).Sample((prefix, rest) =>
        {
            var iri = prefix + rest;
            Assert.Equal(iri, context.ExpandTerm(context.CompactIri(iri)));
            Assert.Equal(iri, LdContext.Core.ExpandTerm(LdContext.Core.CompactIri(iri)));
        }, iter: 2000);
    }

    [Fact]
    public void Expanding_and_compacting_any_string_never_throws()
    {
        var context = new ContextKit().Resolve("""{ "ex": "http://example.org/", "speed": "ex:speed" }""");

        Gen.String.Sample(s =>
        {
            context.CompactIri(context.ExpandTerm(s));
            context.ExpandTerm(context.CompactIri(s));
            LdContext.Core.CompactIri(LdContext.Core.ExpandTerm(s));
        }, iter: 2000);
    }

    [Fact]
    public void Any_json_as_a_context_either_resolves_or_fails_with_an_ngsi_error()
    {
        var kit = new ContextKit();
        kit.Loader.ServeContext("http://remote.example/ex.jsonld", """{ "ex": "http://example.org/", "a": "ex:a" }""");
        kit.Loader.ServeContext("http://remote.example/loop.jsonld", "\"http://remote.example/loop.jsonld\"");
        kit.Loader.Serve("http://remote.example/garbage.jsonld", "{ not json");

        var resolved = 0;
        var rejected = 0;

        Json.Sample(json =>
        {
            LdContext context;
            try
            {
                context = kit.Resolve(json);
            }
            catch (NgsiException)
            {
                Interlocked.Increment(ref rejected);
                return;
            }

            Interlocked.Increment(ref resolved);
            foreach (var key in Keys)
            {
                context.CompactIri(context.ExpandTerm(key));
            }
        }, iter: 3000);

        // Both outcomes must actually occur, or the property says nothing.
        Assert.True(resolved > 100, $"only {resolved} generated contexts resolved");
        Assert.True(rejected > 100, $"only {rejected} generated contexts were rejected");
    }

    [Fact]
    public void Any_string_as_a_link_url_either_resolves_or_fails_with_an_ngsi_error()
    {
        var kit = new ContextKit();

        Gen.String.Sample(url =>
        {
            try
            {
                kit.ResolveLinkAsync(url).GetAwaiter().GetResult();
            }
            catch (NgsiException)
            {
            }
        }, iter: 1000);
    }

    [Fact]
    public void Any_link_header_either_parses_or_fails_with_an_ngsi_error()
    {
        var parts = Gen.OneOfConst("<", ">", ";", ",", "\"", "rel=", JsonLdLink.ContextRelation, "http://x/c.jsonld", " ", "type=\"a/b\"");
        Gen.Frequency((1, Gen.String), (3, parts.Array[0, 12].Select(p => string.Concat(p)))).Sample(header =>
        {
            try
            {
                JsonLdLink.TryGetContextUrl(header, out _);
            }
            catch (NgsiException)
            {
            }
        }, iter: 2000);
    }

    private static string Quote(string value) => JsonSerializer.Serialize(value);
}
