using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker;

/// <summary>Wires the context broker into a host: services, then endpoints.</summary>
public static class BrokerModule
{
    public static IServiceCollection AddMachiBroker(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<BrokerOptions>(configuration.GetSection("Broker"));
        services.AddSingleton<IBrokerHealth, StubHealth>();
        return services;
    }

    public static IEndpointRouteBuilder MapMachiBroker(this IEndpointRouteBuilder app) => app;

    private sealed class StubHealth : IBrokerHealth
    {
        public Task<bool> IsDatabaseReachableAsync(CancellationToken cancellationToken) => Task.FromResult(true);

        public Task<long> CountEntitiesAsync(CancellationToken cancellationToken) => Task.FromResult(0L);
    }
}

/// <summary>What the host asks the broker for health and metrics.</summary>
public interface IBrokerHealth
{
    /// <summary>True when a trivial query against the database succeeds.</summary>
    Task<bool> IsDatabaseReachableAsync(CancellationToken cancellationToken);

    /// <summary>Entities stored, over all tenants (for the machi_entities gauge).</summary>
    Task<long> CountEntitiesAsync(CancellationToken cancellationToken);
}
