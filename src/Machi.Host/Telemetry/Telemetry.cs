using System.Diagnostics.Metrics;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Machi.Host.Telemetry;

/// <summary>Metrics for Prometheus: HTTP server (per route), .NET runtime, and Machi's own meter.</summary>
internal static class Telemetry
{
    public const string MeterName = "Machi";

    public static IServiceCollection AddMachiTelemetry(this IServiceCollection services)
    {
        services.AddSingleton<EntityCountGauge>();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("machi", serviceVersion: MachiVersion.Current))
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(MeterName)
                .AddInstrumentation<EntityCountGauge>()
                .AddPrometheusExporter());
        services.ConfigureOpenTelemetryMeterProvider((provider, metrics) =>
            metrics.AddView(OnlyThisHost(provider.GetRequiredService<IMeterFactory>())));
        return services;
    }

    /// <summary>
    /// A meter provider listens to meters by name, process-wide: with several hosts in one process (tests, or a
    /// future multi-host setup) each would also report the others' requests and gauges. Meters made by another
    /// host's <see cref="IMeterFactory"/> are dropped; process-wide meters (runtime) are kept.
    /// </summary>
    private static Func<Instrument, MetricStreamConfiguration?> OnlyThisHost(IMeterFactory own) =>
        instrument => instrument.Meter.Scope is IMeterFactory factory && !ReferenceEquals(factory, own)
            ? MetricStreamConfiguration.Drop
            : null;

    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapPrometheusScrapingEndpoint("/metrics").ExcludeFromDescription();
        return app;
    }
}
