using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

public sealed class JsonLdLinkTests
{
    [Fact]
    public void The_context_url_is_read_from_the_link_header_of_the_specification_example()
    {
        const string header = "<http://example.org/ngsi-ld/latest/parking-abbreviated.jsonld>; "
            + "rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";

        Assert.True(JsonLdLink.TryGetContextUrl(header, out var url));
        Assert.Equal("http://example.org/ngsi-ld/latest/parking-abbreviated.jsonld", url);
    }

    [Fact]
    public void Other_links_in_the_header_are_skipped()
    {
        const string header = "<https://example.org/next?a=1,2>; rel=\"next\", "
            + "<http://example.org/context.jsonld>; type=\"application/ld+json\"; rel=\"alternate http://www.w3.org/ns/json-ld#context\"";

        Assert.True(JsonLdLink.TryGetContextUrl(header, out var url));
        Assert.Equal("http://example.org/context.jsonld", url);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("<https://example.org/next>; rel=\"next\"")]
    public void A_header_without_a_context_link_gives_none(string? header)
    {
        Assert.False(JsonLdLink.TryGetContextUrl(header, out var url));
        Assert.Null(url);
    }

    [Fact]
    public void Two_context_links_are_bad_request_data()
    {
        var header = JsonLdLink.Format("http://example.org/a.jsonld") + ", " + JsonLdLink.Format("http://example.org/b.jsonld");

        var error = Assert.Throws<NgsiException>(() => JsonLdLink.TryGetContextUrl(header, out _));

        Assert.Equal(NgsiErrorType.BadRequestData, error.Type);
    }

    [Fact]
    public void A_formatted_link_parses_back_to_its_url()
    {
        Assert.True(JsonLdLink.TryGetContextUrl(JsonLdLink.Format(LdContext.CoreContextUrl), out var url));
        Assert.Equal(LdContext.CoreContextUrl, url);
    }
}
