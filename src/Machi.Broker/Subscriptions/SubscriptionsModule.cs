using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Subscriptions;

internal static class SubscriptionsModule
{
    /// <summary>Subscriptions: store, service, matching (change log → outbox) and delivery (outbox → HTTP and MQTT endpoints).</summary>
    public static IServiceCollection AddMachiSubscriptions(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<SubscriptionOptions>(configuration.GetSection("Broker:Subscriptions"));
        services.AddSingleton<SubscriptionService>();
        services.AddSingleton<NotificationDelivery>();
        services.AddHostedService(sp => sp.GetRequiredService<NotificationDelivery>());
        services.AddHostedService<SubscriptionDispatcher>();
        services.AddSingleton<EndpointCertificates>();
        services.AddSingleton<INotificationChannel, HttpNotificationChannel>();
        services.AddSingleton<INotificationChannel, MqttNotificationChannel>();
        services.AddHttpClient(HttpNotificationChannel.HttpClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                ConnectTimeout = TimeSpan.FromSeconds(5),
                SslOptions = { RemoteCertificateValidationCallback = (_, certificate, chain, errors) => sp.GetRequiredService<EndpointCertificates>().Validate(certificate, chain, errors) },
            });
        return services;
    }
}
