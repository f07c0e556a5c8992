using System.Globalization;
using Machi.Snow.Devices;
using Machi.Snow.Ingestion;
using Machi.Snow.Map;
using Machi.Snow.Storage;

namespace Machi.Snow.Simulation;

/// <summary>What <c>machi simulate snowplows</c> was asked to do.</summary>
internal sealed record SimulationSettings(Uri Url, string DataDirectory, int Count, TimeSpan Interval, TimeSpan Duration, int Seed);

/// <summary>
/// Simulated plows (labelled simulated on the map): each drives from 町字 point to a nearby one in a straight line at
/// 15–40 km/h, plowing, salting or travelling per leg, and reports through the real OsmAnd HTTP protocol every
/// interval. Units <c>sim-plow-001</c>… are registered in the data directory's database (given fresh tokens) first.
/// </summary>
internal sealed class SnowplowSimulator(SimulationSettings settings, TextWriter log)
{
    public long Sent;
    public long Failed;

    public static string UnitId(int i) => string.Create(CultureInfo.InvariantCulture, $"sim-plow-{i + 1:000}");

    /// <summary>Registers every simulated unit and returns their tokens.</summary>
    public async Task<string[]> RegisterAsync(CancellationToken ct)
    {
        await using var store = new SqliteSnowStore(Path.Combine(settings.DataDirectory, "machi.db"));
        await store.InitializeAsync(ct);
        var registry = new DeviceRegistry(store, TimeProvider.System);
        var tokens = new string[settings.Count];
        for (var i = 0; i < settings.Count; i++)
        {
            tokens[i] = await registry.RegisterAsync(UnitId(i), string.Create(CultureInfo.InvariantCulture, $"除雪車 {i + 1}号 (sim)"), simulated: true, ct);
        }

        return tokens;
    }

    public async Task RunAsync(CancellationToken ct)
    {
        var tokens = await RegisterAsync(ct);
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 32, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        using var http = new HttpClient(handler) { BaseAddress = settings.Url, Timeout = TimeSpan.FromSeconds(30) };
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(settings.Duration);
        var random = new Random(settings.Seed);
        var towns = Towns.All;
        var plows = Enumerable.Range(0, settings.Count).Select(i => new Plow(UnitId(i), tokens[i], towns[random.Next(towns.Count)], new Random(random.Next()))).ToList();
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"simulate snowplows: {settings.Count} units reporting every {settings.Interval.TotalSeconds:0.#} s to {settings.Url} for {settings.Duration}"));
        var loops = plows.Select((plow, i) => DriveAsync(http, plow, TimeSpan.FromTicks(settings.Interval.Ticks * i / Math.Max(1, settings.Count)), stop.Token));
        await Task.WhenAll(loops);
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"simulate snowplows: {Sent} positions sent, {Failed} failed"));
    }

    private async Task DriveAsync(HttpClient http, Plow plow, TimeSpan offset, CancellationToken ct)
    {
        try
        {
            await Task.Delay(offset, ct);
            using var timer = new PeriodicTimer(settings.Interval);
            do
            {
                plow.Advance(settings.Interval.TotalSeconds);
                var url = string.Create(CultureInfo.InvariantCulture,
                    $"snow/osmand?id={plow.Id}&lat={plow.Lat:0.000000}&lon={plow.Lon:0.000000}&timestamp={DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}&speed={plow.SpeedKmh / OsmAndParser.KnotsToKmh:0.##}&bearing={plow.Heading:0.#}&plow={PlowStates.Name(plow.State)}&batt=87");
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, url);
                    request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", plow.Token);
                    using var response = await http.SendAsync(request, ct);
                    if (response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref Sent);
                    }
                    else
                    {
                        Interlocked.Increment(ref Failed);
                        if (Interlocked.Read(ref Failed) <= 5)
                        {
                            await log.WriteLineAsync($"simulate snowplows: {plow.Id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
                        }
                    }
                }
                catch (HttpRequestException e)
                {
                    Interlocked.Increment(ref Failed);
                    if (Interlocked.Read(ref Failed) <= 5)
                    {
                        await log.WriteLineAsync($"simulate snowplows: {plow.Id}: {e.Message}");
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One simulated plow driving leg by leg between town points.</summary>
    private sealed class Plow(string id, string token, Town start, Random random)
    {
        private Town _target = start;

        public string Id { get; } = id;

        public string Token { get; } = token;

        public double Lat { get; private set; } = start.Lat;

        public double Lon { get; private set; } = start.Lon;

        public double Heading { get; private set; }

        public double SpeedKmh { get; private set; }

        public PlowState State { get; private set; } = PlowState.Plowing;

        public void Advance(double seconds)
        {
            var remaining = seconds * SpeedKmh / 3.6;
            while (true)
            {
                var distance = Geo.Distance(Lat, Lon, _target.Lat, _target.Lon);
                if (SpeedKmh > 0 && distance > remaining)
                {
                    var f = remaining / distance;
                    Heading = Bearing(Lat, Lon, _target.Lat, _target.Lon);
                    Lat += (_target.Lat - Lat) * f;
                    Lon += (_target.Lon - Lon) * f;
                    return;
                }

                remaining -= distance;
                Lat = _target.Lat;
                Lon = _target.Lon;
                NextLeg();
                if (remaining <= 0)
                {
                    return;
                }
            }
        }

        private void NextLeg()
        {
            // A nearby town point (one of the 8 nearest), so plows work a district rather than cross the city.
            var here = (Lat, Lon);
            var candidates = Towns.All.Where(t => t != _target).OrderBy(t => Geo.Distance(here.Lat, here.Lon, t.Lat, t.Lon)).Take(8).ToList();
            _target = candidates[random.Next(candidates.Count)];
            var roll = random.NextDouble();
            State = roll < 0.6 ? PlowState.Plowing : roll < 0.75 ? PlowState.Salting : PlowState.Travelling;
            SpeedKmh = State == PlowState.Travelling ? 30 + (random.NextDouble() * 10) : 15 + (random.NextDouble() * 10);
        }

        private static double Bearing(double lat1, double lon1, double lat2, double lon2)
        {
            var y = Math.Sin(double.DegreesToRadians(lon2 - lon1)) * Math.Cos(double.DegreesToRadians(lat2));
            var x = (Math.Cos(double.DegreesToRadians(lat1)) * Math.Sin(double.DegreesToRadians(lat2)))
                - (Math.Sin(double.DegreesToRadians(lat1)) * Math.Cos(double.DegreesToRadians(lat2)) * Math.Cos(double.DegreesToRadians(lon2 - lon1)));
            return (double.RadiansToDegrees(Math.Atan2(y, x)) + 360) % 360;
        }
    }
}
