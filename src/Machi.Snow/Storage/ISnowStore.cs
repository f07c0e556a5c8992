using Machi.Snow.Ingestion;

namespace Machi.Snow.Storage;

/// <summary>A registered GPS unit. Only a hash of its token is kept.</summary>
internal sealed record DeviceRecord(string Id, string Name, byte[] TokenHash, bool Simulated, DateTimeOffset CreatedAt);

/// <summary>One accepted position of a unit, as kept in the track.</summary>
internal sealed record TrackFix(
    long Seq,
    string DeviceId,
    DateTimeOffset Time,
    double Lat,
    double Lon,
    double? SpeedKmh,
    double? Heading,
    PlowState State,
    double? Altitude,
    double? Accuracy,
    double? Battery,
    string Source);

/// <summary>The latest plowing pass near a point.</summary>
internal sealed record PlowPass(string DeviceId, DateTimeOffset Time, double DistanceMetres);

/// <summary>
/// Snowplow Navi's own data: devices, the position track with its plowing-cell index, rejection counters and snowfall
/// events. SQLite tables <c>snow_*</c> in the host's database today; a PostgreSQL implementation can follow.
/// </summary>
internal interface ISnowStore : IAsyncDisposable
{
    Task InitializeAsync(CancellationToken ct);

    Task<IReadOnlyList<DeviceRecord>> DevicesAsync(CancellationToken ct);

    Task<DeviceRecord?> FindDeviceAsync(string id, CancellationToken ct);

    /// <summary>Registers a unit or gives it a new token (and name).</summary>
    Task SaveDeviceAsync(DeviceRecord device, CancellationToken ct);

    /// <summary>The latest accepted position of every unit that has one.</summary>
    Task<IReadOnlyList<TrackFix>> LatestFixesAsync(CancellationToken ct);

    /// <summary>
    /// Appends a position durably (committed with a full sync before this returns) and, when the unit was plowing,
    /// records the segment from <paramref name="previous"/> in the cell index. Returns the fix with its sequence number.
    /// </summary>
    Task<TrackFix> AppendAsync(TrackFix fix, TrackFix? previous, CancellationToken ct);

    Task CountRejectionAsync(string reason, DateTimeOffset at, CancellationToken ct);

    Task<IReadOnlyDictionary<string, long>> RejectionCountsAsync(CancellationToken ct);

    /// <summary>The latest plowing pass within <paramref name="metres"/> of the point, at or after <paramref name="since"/>.</summary>
    Task<PlowPass?> LastPlowedAsync(double lat, double lon, double metres, DateTimeOffset since, CancellationToken ct);

    /// <summary>Every fix from <paramref name="from"/> (inclusive) to <paramref name="to"/> (exclusive), by unit then time.</summary>
    IAsyncEnumerable<TrackFix> TrackAsync(DateTimeOffset from, DateTimeOffset to, CancellationToken ct);

    Task<DateTimeOffset?> CurrentEventStartAsync(CancellationToken ct);

    Task StartEventAsync(DateTimeOffset at, string? name, CancellationToken ct);
}
