using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Registrations;

/// <summary>Settings of distributed operations, bound from "Broker:Federation".</summary>
public sealed class FederationOptions
{
    /// <summary>This broker's name in Via headers (loop detection); a random one per process when not set.</summary>
    public string BrokerId { get; set; } = "machi-" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>How long to wait for a context source whose registration gives no management.timeout.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Context sources asked at the same time for one request.</summary>
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>Most entities asked of one source for one query page (offset + limit, capped).</summary>
    public int MaxRemoteEntities { get; set; } = 1000;

    /// <summary>Largest answer read from a source.</summary>
    public long MaxResponseBytes { get; set; } = 16 * 1024 * 1024;
}

internal static class FederationModule
{
    public static IServiceCollection AddMachiFederation(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<FederationOptions>(configuration.GetSection("Broker:Federation"));
        services.AddSingleton<RegistrationService>();
        services.AddSingleton<DistributedQuery>();
        services.AddHttpClient(DistributedQuery.HttpClientName, (sp, client) =>
            {
                // Timeouts are per registration (linked cancellation); the client's own must not cut them short.
                client.Timeout = Timeout.InfiniteTimeSpan;
                client.MaxResponseContentBufferSize = sp.GetRequiredService<IOptions<FederationOptions>>().Value.MaxResponseBytes;
            })
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) });
        return services;
    }
}
