using Machi.Broker;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Machi.Host.Health;

/// <summary>Body of <c>GET /health</c>.</summary>
/// <param name="Status">"healthy" or "unhealthy".</param>
/// <param name="Database">"reachable" or "unreachable".</param>
/// <param name="Version">The running Machi version.</param>
internal sealed record HealthReport(string Status, string Database, string Version);

/// <summary>The liveness/readiness probe for load balancers and orchestrators.</summary>
internal static class HealthEndpoints
{
    /// <summary>A database that has not answered by then counts as unreachable: probes have short timeouts.</summary>
    private static readonly TimeSpan DatabaseTimeout = TimeSpan.FromSeconds(5);

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health", GetHealth)
            .WithName("GetHealth")
            .WithTags("Operations")
            .WithSummary("Health of this Machi node / ノードの稼働状態")
            .WithDescription("200 when the node can reach its database, 503 otherwise.")
            .Produces<HealthReport>(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    private static async Task<Results<Ok<HealthReport>, JsonHttpResult<HealthReport>>> GetHealth(
        IBrokerHealth broker, ILoggerFactory loggers, HttpContext context, CancellationToken cancellationToken)
    {
        context.Response.Headers.CacheControl = "no-store";
        var reachable = await IsDatabaseReachableAsync(broker, loggers, cancellationToken);
        return reachable
            ? TypedResults.Ok(new HealthReport("healthy", "reachable", MachiVersion.Current))
            : TypedResults.Json(
                new HealthReport("unhealthy", "unreachable", MachiVersion.Current),
                statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<bool> IsDatabaseReachableAsync(
        IBrokerHealth broker, ILoggerFactory loggers, CancellationToken requestAborted)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        timeout.CancelAfter(DatabaseTimeout);
        try
        {
            return await broker.IsDatabaseReachableAsync(timeout.Token);
        }
        catch (Exception e) when (!requestAborted.IsCancellationRequested)
        {
            // Whatever the database threw, the answer to the probe is the same: not healthy. The log says why.
            loggers.CreateLogger(typeof(HealthEndpoints)).LogWarning(e, "Health check: database unreachable");
            return false;
        }
    }
}
