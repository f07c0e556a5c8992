using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Machi.Bench.Server;

/// <summary>
/// The HTTP floor of a read: a bare Kestrel server that answers every <c>GET /ngsi-ld/v1/entities/{id}</c> with the
/// same bytes (the broker's own answer for one bench entity), run in a process of its own as the broker is and
/// measured with the same load generator. What the client, loopback TCP and Kestrel cost on this machine before any
/// broker work — no token, no lookup, no rendering — so no read of the broker can be faster or have a shorter tail.
/// </summary>
internal static class HttpFloor
{
    /// <summary>The bench runs as the floor when its arguments are this, the URL to listen on and the body's file.</summary>
    public const string ServeArgument = "--serve-http-floor";

    public static bool IsServe(string[] args) => args is [ServeArgument, _, _];

    public static async Task<int> ServeAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var body = await File.ReadAllBytesAsync(args[2]).ConfigureAwait(false);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(args[1]);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        await using var app = builder.Build();
        app.MapGet("/health", () => "ok");
        app.MapGet("/ngsi-ld/v1/entities/{id}", (HttpContext http) =>
        {
            http.Response.ContentType = "application/json";
            http.Response.ContentLength = body.Length;
            return http.Response.Body.WriteAsync(body).AsTask();
        });
        await app.RunAsync().ConfigureAwait(false);
        return 0;
    }
}
