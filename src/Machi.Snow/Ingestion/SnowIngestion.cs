using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Machi.Broker;
using Machi.Broker.Access;
using Machi.Snow.Devices;
using Machi.Snow.Live;
using Machi.Snow.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Snow.Ingestion;

/// <summary>
/// Takes a parsed position from any protocol (OsmAnd, MQTT, NGSI-LD) through the same steps: the unit and its token,
/// the city's rules, then the track (durable), the Vehicle entity in the broker (and so its history), the live map.
/// A refusal is counted per reason and nothing of it is stored.
/// </summary>
internal sealed class SnowIngestion(
    DeviceRegistry devices,
    ISnowStore store,
    LocalBroker broker,
    LiveHub live,
    IOptions<SnowOptions> options,
    TimeProvider time,
    ILogger<SnowIngestion> logger)
{
    /// <summary>Snowplow Navi writes to the broker as its own client.</summary>
    public static readonly Caller Caller = Caller.Service("machi-snow", Caller.WriteScope);

    public const string EntityPrefix = "urn:ngsi-ld:Vehicle:";

    private readonly ConcurrentDictionary<string, TrackFix> _last = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);
    private readonly long[] _rejected = new long[RejectReasons.All.Count];
    private long _accepted;

    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Rejections since start, by reason code (the database keeps the totals).</summary>
    public IReadOnlyDictionary<string, long> RejectedSinceStart =>
        RejectReasons.All.ToDictionary(RejectReasons.Code, r => Interlocked.Read(ref _rejected[(int)r]));

    public async Task LoadAsync(CancellationToken ct)
    {
        var known = devices.Cached.ToDictionary(d => d.Id, StringComparer.Ordinal);
        foreach (var fix in await store.LatestFixesAsync(ct).ConfigureAwait(false))
        {
            _last[fix.DeviceId] = fix;
            live.Seed(LivePosition.From(fix, known.GetValueOrDefault(fix.DeviceId)));
        }
    }

    public TrackFix? LastFix(string deviceId) => _last.GetValueOrDefault(deviceId);

    public IReadOnlyCollection<TrackFix> LastFixes => (IReadOnlyCollection<TrackFix>)_last.Values;

    /// <summary>Accepts the position (null) or says why not.</summary>
    public async Task<Rejection?> IngestAsync(ParseResult parsed, CancellationToken ct)
    {
        if (parsed.Rejection is { } malformed)
        {
            await CountAsync(malformed, ct).ConfigureAwait(false);
            return malformed;
        }

        var report = parsed.Report!;
        var (device, refused) = await devices.AuthenticateAsync(report.DeviceId, report.Token, ct).ConfigureAwait(false);
        if (refused is not null)
        {
            await CountAsync(refused, ct).ConfigureAwait(false);
            return refused;
        }

        // One position of a unit at a time, so each is checked against, and joined to, the one before.
        var gate = _locks.GetOrAdd(report.DeviceId, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var previous = _last.GetValueOrDefault(report.DeviceId);
            if (PositionRules.Check(report, options.Value, time.GetUtcNow(), previous) is { } rule)
            {
                await CountAsync(rule, ct).ConfigureAwait(false);
                return rule;
            }

            var fix = new TrackFix(0, report.DeviceId, report.Time, report.Lat, report.Lon, report.SpeedKmh, report.Heading, report.State,
                report.Altitude, report.Accuracy, report.Battery, report.Source);
            var joinable = previous is not null && fix.Time >= previous.Time && fix.Time - previous.Time <= options.Value.MaxSegmentGap;
            fix = await store.AppendAsync(fix, joinable ? previous : null, ct).ConfigureAwait(false);

            // A late fix (older than the unit's newest, e.g. sent again after a dead spot) joins the track and so the
            // "last plowed" answers, but does not move the vehicle back on the map or in its entity.
            if (previous is null || fix.Time >= previous.Time)
            {
                await WriteVehicleAsync(fix, device!, ct).ConfigureAwait(false);
                _last[fix.DeviceId] = fix;
                live.Publish(LivePosition.From(fix, device));
            }

            Interlocked.Increment(ref _accepted);
            return null;
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task CountAsync(Rejection rejection, CancellationToken ct)
    {
        Interlocked.Increment(ref _rejected[(int)rejection.Reason]);
        try
        {
            await store.CountRejectionAsync(rejection.Code, time.GetUtcNow(), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The in-memory counter still has it; a refusal must not turn into a server error.
            logger.LogWarning(e, "Could not record a {Reason} rejection", rejection.Code);
        }
    }

    /// <summary>The unit's Vehicle entity (Smart Data Models Vehicle) with this position; upserted through the broker.</summary>
    private async Task WriteVehicleAsync(TrackFix fix, DeviceRecord device, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        var observedAt = fix.Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", EntityPrefix + fix.DeviceId);
            json.WriteString("type", "Vehicle");
            Property(json, "name", device.Name, null);
            Property(json, "vehicleType", "constructionOrMaintenanceVehicle", null);
            json.WriteStartObject("category");
            json.WriteString("type", "Property");
            json.WriteStartArray("value");
            json.WriteStringValue("municipalServices");
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteStartObject("location");
            json.WriteString("type", "GeoProperty");
            json.WriteStartObject("value");
            json.WriteString("type", "Point");
            json.WriteStartArray("coordinates");
            json.WriteNumberValue(Math.Round(fix.Lon, 7));
            json.WriteNumberValue(Math.Round(fix.Lat, 7));
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteString("observedAt", observedAt);
            json.WriteEndObject();
            if (fix.SpeedKmh is { } speed)
            {
                json.WriteStartObject("speed");
                json.WriteString("type", "Property");
                json.WriteNumber("value", Math.Round(speed, 2));
                json.WriteString("unitCode", "KMH");
                json.WriteString("observedAt", observedAt);
                json.WriteEndObject();
            }

            if (fix.Heading is { } heading)
            {
                json.WriteStartObject("heading");
                json.WriteString("type", "Property");
                json.WriteNumber("value", Math.Round(heading, 1));
                json.WriteString("unitCode", "DD");
                json.WriteString("observedAt", observedAt);
                json.WriteEndObject();
            }

            Property(json, "serviceStatus", "onRoute", observedAt);
            Property(json, "plowState", PlowStates.Name(fix.State), observedAt);
            json.WriteStartObject("simulated");
            json.WriteString("type", "Property");
            json.WriteBoolean("value", device.Simulated);
            json.WriteEndObject();

            // Plows are open data: anyone may read their positions (the public map shows them anyway).
            json.WriteStartObject(Machi.Broker.Access.EntityAccess.VisibilityAttribute);
            json.WriteString("type", "Property");
            json.WriteString("value", "public");
            json.WriteEndObject();
            json.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        await broker.UpsertAsync(Caller, document.RootElement, ct).ConfigureAwait(false);
    }

    private static void Property(Utf8JsonWriter json, string name, string value, string? observedAt)
    {
        json.WriteStartObject(name);
        json.WriteString("type", "Property");
        json.WriteString("value", value);
        if (observedAt is not null)
        {
            json.WriteString("observedAt", observedAt);
        }

        json.WriteEndObject();
    }
}
