using System.Text.Json;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Http;

/// <summary>A JSON response written straight into the response pipe, with the NGSI-LD headers.</summary>
internal sealed class NgsiJsonResult(int status, string mediaType, LdContext? linkContext, Action<Utf8JsonWriter> write) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = status;
        response.ContentType = mediaType;
        if (linkContext is not null && mediaType != MediaTypes.JsonLd)
        {
            // application/json answers name their @context in a Link header; an inline context is hosted
            // implicitly so that it has a URL (clause 6.3.5).
            var url = linkContext.IsCore
                ? LdContext.CoreContextUrl
                : await httpContext.RequestServices.GetRequiredService<ContextRegistry>()
                    .GetLinkUrlAsync(linkContext, Contexts.ContextsApi.BaseUrl(httpContext.Request), httpContext.RequestAborted).ConfigureAwait(false);
            response.Headers.Link = JsonLdLink.Format(url);
        }

        using (var writer = new Utf8JsonWriter(response.BodyWriter, EntityRenderer.WriterOptions))
        {
            write(writer);
        }

        await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
    }
}

