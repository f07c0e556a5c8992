using Machi.Broker.Access;
using Machi.Broker.Batch;
using Machi.Broker.Contexts;
using Machi.Broker.Discovery;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Query;
using Machi.Broker.Registrations;
using Machi.Broker.Storage;
using Machi.Broker.Storage.Postgres;
using Machi.Broker.Stream;
using Machi.Broker.Subscriptions;
using Machi.Broker.Temporal;
using Machi.Ngsi.JsonLd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker;

/// <summary>Wires the context broker into a host: services, then endpoints.</summary>
public static class BrokerModule
{
    public static IServiceCollection AddMachiBroker(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<BrokerOptions>(configuration.GetSection("Broker"));
        services.TryAddSingleton(TimeProvider.System);

        AddStorage(services, !string.IsNullOrWhiteSpace(configuration["Broker:Database"]));
        services.AddSingleton<EntityService>();
        services.AddSingleton<EntityMaps>();
        services.AddSingleton<AccessPolicy>();
        services.AddSingleton<ConsentService>();
        services.AddSingleton(sp => new AccessAudit(sp.GetRequiredService<IAccessLog>(), sp.GetRequiredService<TimeProvider>())
        {
            Node = configuration["Broker:NodeName"] is { Length: > 0 } node ? node : Environment.MachineName,
        });
        services.AddSingleton(sp => new LocalBroker(sp.GetRequiredService<EntityService>()));

        // JSON-LD: the core context is built in; user contexts are fetched (bounded, cached) or hosted here.
        services.Configure<LdContextOptions>(configuration.GetSection("Broker:JsonLd"));
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<LdContextOptions>>().Value);
        services.AddSingleton<IContextDocumentLoader>(sp => new HttpContextDocumentLoader(
            new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }),
            sp.GetRequiredService<LdContextOptions>()));
        services.AddSingleton<ContextRegistry>();
        services.AddSingleton<IContextResolver, ContextResolver>();
        services.AddSingleton<IBrokerHealth, StoreHealth>();
        services.AddMachiFederation(configuration);
        services.AddMachiSubscriptions(configuration);

        // One reader of the change log feeds every event-stream client; the log is pruned behind its consumers.
        services.AddSingleton<ChangeFeed>();
        services.AddHostedService(sp => sp.GetRequiredService<ChangeFeed>());
        services.AddSingleton<ChangeLogRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<ChangeLogRetention>());
        services.AddMachiTemporal();
        return services;
    }

    /// <summary>
    /// The backend: PostgreSQL when Broker:Database (--database, Machi__Broker__Database) holds a connection string,
    /// else the SQLite file in the data directory. Everything that keeps state goes through these registrations.
    /// </summary>
    private static void AddStorage(IServiceCollection services, bool postgres)
    {
        // The container owns the store: it is opened (schema migrated) on first use and disposed (writer drained,
        // WAL checkpointed) only after the server has finished every in-flight request.
        if (postgres)
        {
            services.AddSingleton(sp =>
            {
                var options = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
                var store = new PostgresEntityStore(options.Database!, sp.GetRequiredService<ILogger<PostgresEntityStore>>(), sp.GetRequiredService<TimeProvider>());
                store.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
                return store;
            });
            services.AddSingleton<IEntityStore>(sp => sp.GetRequiredService<PostgresEntityStore>());
            services.AddSingleton<IHostedContextStore, PostgresHostedContextStore>();
            services.AddSingleton<IEntityMapStore, PostgresEntityMapStore>();
            services.AddSingleton<IRegistrationStore, PostgresRegistrationStore>();
            services.AddSingleton<ISubscriptionStore, PostgresSubscriptionStore>();
            services.AddSingleton<INotificationLeadership, PostgresLeadership>();
            services.AddSingleton<ITemporalHistory, PostgresTemporalHistory>();
            services.AddSingleton<IStoreMaintenance, PostgresStoreMaintenance>();
            services.AddSingleton<IConsentStore, PostgresConsentStore>();
            services.AddSingleton<IAccessLog>(sp => new PostgresAccessLog(sp.GetRequiredService<PostgresEntityStore>().DataSource));
            return;
        }

        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
            var store = new SqliteEntityStore(Path.Combine(options.DataDirectory, "machi.db"), sp.GetRequiredService<ILogger<SqliteEntityStore>>());
            store.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult();
            return store;
        });
        services.AddSingleton<IEntityStore>(sp => sp.GetRequiredService<SqliteEntityStore>());
        services.AddSingleton<IHostedContextStore, SqliteHostedContextStore>();
        services.AddSingleton<IEntityMapStore, SqliteEntityMapStore>();
        services.AddSingleton<IRegistrationStore, SqliteRegistrationStore>();
        services.AddSingleton<ISubscriptionStore, SqliteSubscriptionStore>();
        services.AddSingleton<INotificationLeadership, SoleNodeLeadership>();
        services.AddSingleton<ITemporalHistory, TemporalHistory>();
        services.AddSingleton<IStoreMaintenance, SqliteStoreMaintenance>();
        services.AddSingleton<IConsentStore, SqliteConsentStore>();
        services.AddSingleton<IAccessLog>(sp => new SqliteAccessLog(Path.Combine(sp.GetRequiredService<IOptions<BrokerOptions>>().Value.DataDirectory, "access-log.db"),
            sp.GetRequiredService<ILogger<SqliteAccessLog>>()));
    }

    /// <summary>Maps the NGSI-LD API under /ngsi-ld/v1; every failure there answers with ProblemDetails.</summary>
    public static IEndpointRouteBuilder MapMachiBroker(this IEndpointRouteBuilder app)
    {
        // Open the database at start-up, not on the first request.
        _ = app.ServiceProvider.GetRequiredService<IEntityStore>();

        // Active consents are read once here, not by the first request that meets personal data (possibly the writer).
        app.ServiceProvider.GetRequiredService<AccessPolicy>().LoadAsync(CancellationToken.None).GetAwaiter().GetResult();
        var api = app.MapGroup("/ngsi-ld/v1");
        api.AddEndpointFilter(async (context, next) =>
        {
            try
            {
                await Callers.AuthorizeAsync(context.HttpContext).ConfigureAwait(false);
                return await next(context).ConfigureAwait(false);
            }
            catch (Exception ex) when (!context.HttpContext.Response.HasStarted)
            {
                var problem = ErrorHandling.ToNgsi(ex);
                if (problem.Type == Ngsi.Errors.NgsiErrorType.InternalError)
                {
                    context.HttpContext.RequestServices.GetRequiredService<ILogger<EntityService>>()
                        .LogError(ex, "Unhandled error on {Method} {Path}", context.HttpContext.Request.Method, context.HttpContext.Request.Path);
                }

                return new ProblemResult(problem);
            }
        });
        api.MapQuery();
        EntityMaps.MapEntityMaps(api);
        api.MapEntities();
        api.MapBatch();
        api.MapContexts();
        api.MapDiscovery();
        api.MapRegistrations();
        api.MapSubscriptions();
        api.MapStream();
        api.MapTemporal();
        app.MapAccess();
        app.MapConsentPages();
        api.Map("/{**path}", (HttpContext http) => new ProblemResult(Ngsi.Errors.NgsiException.Invalid(
            $"{http.Request.Method} {http.Request.Path} is not an operation of this NGSI-LD API."))).ExcludeFromDescription();
        return app;
    }

    private sealed class ProblemResult(Ngsi.Errors.NgsiException problem) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext) => ErrorHandling.WriteProblemAsync(httpContext, problem);
    }

    private sealed class StoreHealth(IEntityStore store) : IBrokerHealth
    {
        public async Task<bool> IsDatabaseReachableAsync(CancellationToken cancellationToken) =>
            await store.PingAsync(cancellationToken).ConfigureAwait(false);

        public async Task<long> CountEntitiesAsync(CancellationToken cancellationToken) =>
            await store.CountAsync(cancellationToken).ConfigureAwait(false);
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
