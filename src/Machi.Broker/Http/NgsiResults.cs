using System.Text.Json;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Http;

/// <summary>A JSON response written straight into the response pipe, with the NGSI-LD headers.</summary>
internal sealed class NgsiJsonResult(int status, string mediaType, LdContext? linkContext, Action<Utf8JsonWriter> write) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = status;
        response.ContentType = mediaType;
        if (linkContext is not null && mediaType != MediaTypes.JsonLd && ContextLinks.UrlFor(linkContext, httpContext) is { } url)
        {
            response.Headers.Link = $"<{url}>; rel=\"{MediaTypes.ContextRel}\"; type=\"{MediaTypes.JsonLd}\"";
        }

        using (var writer = new Utf8JsonWriter(response.BodyWriter, EntityRenderer.WriterOptions))
        {
            write(writer);
        }

        await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
    }
}

/// <summary>The URL by which a response's @context is named in its Link header.</summary>
internal static class ContextLinks
{
    public static string? UrlFor(LdContext context, HttpContext http)
    {
        if (context.IsCore)
        {
            return EntityRenderer.CoreContextUri;
        }

        if (context.Value is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var url))
        {
            return url;
        }

        // Inline contexts are hosted implicitly (kind ImplicitlyCreated) so a Link header can name them.
        var registry = http.RequestServices.GetService(typeof(IImplicitContextHost)) as IImplicitContextHost;
        return registry?.UrlFor(context, http);
    }
}

/// <summary>Hosts inline @contexts so application/json responses can link to them.</summary>
internal interface IImplicitContextHost
{
    string? UrlFor(LdContext context, HttpContext http);
}
