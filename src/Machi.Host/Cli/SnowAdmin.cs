using Machi.Snow.Devices;
using Machi.Snow.Simulation;
using Machi.Snow.Storage;

namespace Machi.Host.Cli;

/// <summary>Snowplow Navi commands that work on the data directory (the server may be running).</summary>
internal static class SnowAdmin
{
    public static async Task<string> AddDeviceAsync(IConfiguration configuration, string id, string? name, CancellationToken ct)
    {
        await using var store = new SqliteSnowStore(DatabasePath(configuration));
        await store.InitializeAsync(ct);
        return await new DeviceRegistry(store, TimeProvider.System).RegisterAsync(id, name, simulated: false, ct);
    }

    public static Task SimulateAsync(IConfiguration configuration, Uri url, int count, TimeSpan interval, TimeSpan duration, TextWriter log, CancellationToken ct) =>
        new SnowplowSimulator(new SimulationSettings(url, Path.GetDirectoryName(DatabasePath(configuration))!, count, interval, duration, Seed: 7), log).RunAsync(ct);

    private static string DatabasePath(IConfiguration configuration)
    {
        var data = configuration["Broker:DataDirectory"]!;
        Directory.CreateDirectory(data);
        return Path.Combine(data, "machi.db");
    }
}
