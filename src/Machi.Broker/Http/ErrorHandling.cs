using System.Text;
using System.Text.Json;
using Machi.Ngsi.Errors;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Http;

/// <summary>
/// Turns every failure under /ngsi-ld into a ProblemDetails body (RFC 7807 with the spec's error type URIs,
/// clause 5.5.2). Deliberate rejections are NgsiExceptions; malformed input the framework detects is mapped to
/// the matching NGSI-LD error; anything else is a bug: logged, and reported as InternalError without details.
/// </summary>
internal static class ErrorHandling
{
    public static NgsiException ToNgsi(Exception ex) => ex switch
    {
        NgsiException n => n,
        JsonException j => NgsiException.Invalid($"The body is not valid JSON: {j.Message}"),
        BadHttpRequestException { StatusCode: 413 } => new NgsiException(NgsiErrorType.PayloadTooLarge, "The request body is larger than this broker accepts."),
        BadHttpRequestException b => NgsiException.Invalid(b.Message),
        InvalidOperationException { InnerException: JsonException j } => NgsiException.Invalid($"The body is not valid JSON: {j.Message}"),
        DecoderFallbackException => NgsiException.Invalid("The body is not valid UTF-8."),
        _ => new NgsiException(NgsiErrorType.InternalError, "An internal error occurred; it has been logged."),
    };

    public static async Task WriteProblemAsync(HttpContext context, NgsiException problem)
    {
        context.Response.Clear();
        context.Response.StatusCode = problem.Status;
        if (problem.Type == NgsiErrorType.Unauthorized)
        {
            // RFC 6750: say how to authenticate, and that the token sent (if any) was not accepted.
            context.Response.Headers.WWWAuthenticate = context.Request.Headers.Authorization.Count > 0
                ? "Bearer realm=\"machi\", error=\"invalid_token\""
                : "Bearer realm=\"machi\"";
        }

        context.Response.ContentType = MediaTypes.Json;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            WriteProblem(w, problem);
        }

        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    public static void WriteProblem(Utf8JsonWriter w, NgsiException problem)
    {
        w.WriteStartObject();
        w.WriteString("type", problem.TypeUri);
        w.WriteString("title", problem.Title);
        w.WriteNumber("status", problem.Status);
        w.WriteString("detail", problem.Detail);
        w.WriteEndObject();
    }
}
