namespace Machi.Snow.Ingestion;

/// <summary>What a plow is doing: 除雪中 (plowing), 散布中 (salting: spreading anti-freeze), 移動中 (travelling).</summary>
internal enum PlowState
{
    Travelling,
    Plowing,
    Salting,
}

internal static class PlowStates
{
    public static string Name(PlowState state) => state switch
    {
        PlowState.Plowing => "plowing",
        PlowState.Salting => "salting",
        _ => "travelling",
    };

    /// <summary>Accepts the state names and a few words GPS units send (<c>plow=1</c>, <c>salt</c>, 除雪…).</summary>
    public static PlowState? Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "plowing" or "plow" or "plowed" or "1" or "true" or "on" or "除雪" or "除雪中" => PlowState.Plowing,
        "salting" or "salt" or "spreading" or "2" or "散布" or "散布中" => PlowState.Salting,
        "travelling" or "traveling" or "travel" or "0" or "false" or "off" or "移動" or "移動中" => PlowState.Travelling,
        _ => (PlowState)(-1),
    };
}

/// <summary>One position a unit reported, parsed but not yet checked against the device list or the city's rules.</summary>
/// <param name="SpeedKmh">Ground speed in km/h (OsmAnd/Traccar units send knots; parsers convert).</param>
/// <param name="Time">When the fix was taken; the server's clock when the unit sent none.</param>
internal sealed record PositionReport(
    string DeviceId,
    string? Token,
    double Lat,
    double Lon,
    DateTimeOffset Time,
    double? SpeedKmh,
    double? Heading,
    double? Altitude,
    double? Accuracy,
    double? Battery,
    PlowState State,
    string Source);

/// <summary>Why a position was refused. Each has a stable code (metrics, the response's <c>reason</c>) and an HTTP status.</summary>
internal enum RejectReason
{
    Malformed,
    MissingToken,
    UnknownDevice,
    InvalidToken,
    OutsideCity,
    TooFast,
    FutureTimestamp,
}

internal static class RejectReasons
{
    public static IReadOnlyList<RejectReason> All { get; } = Enum.GetValues<RejectReason>();

    public static string Code(RejectReason reason) => reason switch
    {
        RejectReason.Malformed => "malformed",
        RejectReason.MissingToken => "missing_token",
        RejectReason.UnknownDevice => "unknown_device",
        RejectReason.InvalidToken => "invalid_token",
        RejectReason.OutsideCity => "outside_city",
        RejectReason.TooFast => "too_fast",
        RejectReason.FutureTimestamp => "future_timestamp",
        _ => "rejected",
    };

    public static int Status(RejectReason reason) => reason switch
    {
        RejectReason.Malformed => 400,
        RejectReason.MissingToken or RejectReason.UnknownDevice or RejectReason.InvalidToken => 401,
        _ => 422,
    };
}

/// <summary>A refusal: the reason and a sentence for the unit's operator.</summary>
internal sealed record Rejection(RejectReason Reason, string Detail)
{
    public string Code => RejectReasons.Code(Reason);

    public int Status => RejectReasons.Status(Reason);
}

/// <summary>A parse either gives a report or a rejection (always <see cref="RejectReason.Malformed"/> or a missing token).</summary>
internal readonly record struct ParseResult(PositionReport? Report, Rejection? Rejection)
{
    public static ParseResult Ok(PositionReport report) => new(report, null);

    public static ParseResult Bad(string detail) => new(null, new Rejection(RejectReason.Malformed, detail));
}
