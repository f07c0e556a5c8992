using Machi.Broker;
using Machi.Snow.Devices;
using Machi.Snow.Ingestion;
using Machi.Snow.Live;
using Machi.Snow.Map;
using Machi.Snow.Operator;
using Machi.Snow.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Machi.Snow;

/// <summary>Wires Snowplow Navi (除雪車ナビ) into a host: services, then endpoints.</summary>
public static class SnowModule
{
    public static IServiceCollection AddMachiSnow(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<SnowOptions>(configuration.GetSection("Snow"));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ISnowStore>(sp =>
        {
            var broker = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            var store = new SqliteSnowStore(Path.Combine(broker.DataDirectory, "machi.db"));
            store.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
            return store;
        });
        services.AddSingleton<DeviceRegistry>();
        services.AddSingleton<LiveHub>();
        services.AddHostedService(sp => sp.GetRequiredService<LiveHub>());
        services.AddSingleton<SnowIngestion>();
        services.AddHostedService<MqttIngestion>();
        return services;
    }

    public static WebApplication MapMachiSnow(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);

        // Open the tables and load the units and their last positions before the first request.
        app.Services.GetRequiredService<DeviceRegistry>().LoadAsync(CancellationToken.None).GetAwaiter().GetResult();
        app.Services.GetRequiredService<SnowIngestion>().LoadAsync(CancellationToken.None).GetAwaiter().GetResult();
        app.MapIngestion();
        app.MapSnowMap();
        app.MapSnowOperator();
        return app;
    }
}
