using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Machi.Broker.Http;

/// <summary>Reads what every NGSI-LD request carries: tenant, @context (Link header or body), JSON body.</summary>
internal static class NgsiRequest
{
    public const string TenantHeader = "NGSILD-Tenant";

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64, AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow };

    /// <summary>The tenant named by NGSILD-Tenant; "" is the default tenant.</summary>
    public static string Tenant(HttpRequest request)
    {
        var value = request.Headers[TenantHeader];
        if (StringValues.IsNullOrEmpty(value))
        {
            return string.Empty;
        }

        var tenant = value.ToString();
        if (tenant.Length > 64 || !tenant.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
        {
            throw NgsiException.BadData("NGSILD-Tenant must be 1–64 characters of letters, digits, '_', '-' or '.'.");
        }

        return tenant;
    }

    /// <summary>The @context named by the Link header (rel json-ld#context), or null when there is none.</summary>
    public static string? LinkContextUrl(HttpRequest request)
    {
        var header = request.Headers.Link;
        return header.Count > 0 && JsonLdLink.TryGetContextUrl(header.ToString(), out var url) ? url : null;
    }

    /// <summary>The context of a request without a body: the Link header's, else the core context.</summary>
    public static ValueTask<LdContext> ContextAsync(HttpContext http, IContextResolver resolver)
    {
        var url = LinkContextUrl(http.Request);
        return url is null ? ValueTask.FromResult(LdContext.Core) : resolver.ResolveLinkAsync(url, http.RequestAborted);
    }

    /// <summary>Reads a JSON body; 415 for other media types, InvalidRequest for malformed JSON. The document lives
    /// until the response is done.</summary>
    public static async Task<(JsonElement Body, string MediaType)> ReadBodyAsync(HttpContext http, bool allowMergePatch = false)
    {
        var mediaType = MediaTypes.RequestBodyType(http.Request, allowMergePatch);
        var limit = http.RequestServices.GetRequiredService<IOptions<BrokerOptions>>().Value.MaxRequestBodyBytes;
        if (http.Request.ContentLength > limit)
        {
            throw TooLarge(limit);
        }

        var read = await http.Request.BodyReader.ReadAsync(http.RequestAborted).ConfigureAwait(false);
        while (!read.IsCompleted)
        {
            if (read.Buffer.Length > limit)
            {
                http.Request.BodyReader.AdvanceTo(read.Buffer.End);
                throw TooLarge(limit);
            }

            http.Request.BodyReader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            read = await http.Request.BodyReader.ReadAsync(http.RequestAborted).ConfigureAwait(false);
        }

        if (read.Buffer.Length > limit)
        {
            http.Request.BodyReader.AdvanceTo(read.Buffer.End);
            throw TooLarge(limit);
        }

        try
        {
            if (read.Buffer.Length == 0)
            {
                throw NgsiException.Invalid("The request body is empty; a JSON body is required.");
            }

            // The pipe's memory is reused once consumed, and a document reads its input lazily: copy the body into
            // a pooled buffer that lives (with the document) until the response is done.
            var length = (int)read.Buffer.Length;
            var copy = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
            System.Buffers.BuffersExtensions.CopyTo(read.Buffer, copy.AsSpan());
            var body = new PooledDocument(copy);
            http.Response.RegisterForDispose(body);
            RejectUnpairedSurrogates(copy.AsSpan(0, length));
            var document = body.Parse(length);
            return document.RootElement.ValueKind == JsonValueKind.Null
                ? throw NgsiException.BadData("The body is JSON null.")
                : (document.RootElement, mediaType);
        }
        catch (JsonException ex)
        {
            throw NgsiException.Invalid($"The body is not valid JSON: {ex.Message}");
        }
        finally
        {
            http.Request.BodyReader.AdvanceTo(read.Buffer.End);
        }
    }

    /// <summary>A parsed body and the pooled buffer it reads from, released together.</summary>
    private sealed class PooledDocument(byte[] buffer) : IDisposable
    {
        private JsonDocument? _document;

        public JsonDocument Parse(int length) => _document = JsonDocument.Parse(buffer.AsMemory(0, length), DocumentOptions);

        public void Dispose()
        {
            _document?.Dispose();
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// JSON allows "\ud800" escapes that decode to half a character; such text cannot be stored or sent as UTF-8,
    /// so it is refused up front. Only a body with a \u escape at all is read for it, and then only its escaped
    /// strings are decoded.
    /// </summary>
    private static void RejectUnpairedSurrogates(ReadOnlySpan<byte> body)
    {
        if (body.IndexOf("\\u"u8) < 0)
        {
            return;
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = DocumentOptions.MaxDepth });
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped)
            {
                continue;
            }

            string text;
            try
            {
                text = reader.GetString()!;
            }
            catch (InvalidOperationException)
            {
                text = "\ud800"; // the escape does not decode to text
            }

            if (HasUnpairedSurrogate(text))
            {
                throw NgsiException.BadData("The body contains a string with an unpaired UTF-16 surrogate (e.g. \\ud800), which is not valid text.");
            }
        }
    }

    private static bool HasUnpairedSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return true;
            }
        }

        return false;
    }

    private static NgsiException TooLarge(long limit) =>
        new(NgsiErrorType.PayloadTooLarge, $"The request body is larger than the {limit} bytes this broker accepts.");

    /// <summary>
    /// The @context of one JSON object of a request body (clause 6.3.5): for application/ld+json it must be
    /// the object's "@context" member; for application/json it comes from the Link header and the body must not
    /// carry one.
    /// </summary>
    public static ValueTask<LdContext> BodyContextAsync(HttpContext http, IContextResolver resolver, JsonElement body, string mediaType)
    {
        var hasInline = body.TryGetProperty("@context", out var inline);
        if (mediaType == MediaTypes.JsonLd)
        {
            return hasInline && inline.ValueKind != JsonValueKind.Null
                ? resolver.ResolveAsync(JsonNode.Parse(JsonMarshal.GetRawUtf8Value(inline)), http.RequestAborted)
                : throw NgsiException.BadData("A body sent as application/ld+json must carry its @context.");
        }

        if (hasInline)
        {
            throw NgsiException.BadData("A body sent as application/json must not carry @context; send it in a Link header or use application/ld+json.");
        }

        return ContextAsync(http, resolver);
    }

    /// <summary>Checks a path id is a URI.</summary>
    public static string EntityId(string id) =>
        Ngsi.Model.NgsiText.IsUri(id) ? id : throw NgsiException.BadData($"'{Ngsi.Model.EntityParser.Truncate(id)}' is not a valid entity id (a URI is required).");
}
