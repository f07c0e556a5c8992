namespace Machi.Snow;

/// <summary>Settings of Snowplow Navi (section <c>Snow</c>).</summary>
public sealed class SnowOptions
{
    /// <summary>The city's bounding box (WGS84 degrees); positions outside are rejected. Default: Aizuwakamatsu with a margin.</summary>
    public double West { get; set; } = 139.78;

    public double South { get; set; } = 37.28;

    public double East { get; set; } = 140.10;

    public double North { get; set; } = 37.64;

    /// <summary>Reported or implied speeds above this are impossible for a plow (km/h).</summary>
    public double MaxSpeedKmh { get; set; } = 150;

    /// <summary>How far ahead of the server's clock a fix may be stamped (GPS units' clocks drift a little).</summary>
    public TimeSpan FutureTolerance { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>A street counts as plowed when a plowing vehicle passed within this distance (metres).</summary>
    public double PassRadiusMetres { get; set; } = 30;

    /// <summary>Consecutive fixes of one unit further apart than this in time are not joined into a driven segment.</summary>
    public TimeSpan MaxSegmentGap { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Live map: positions are handed to viewers at most once per interval, all at once (one render, one write per viewer).</summary>
    public TimeSpan LiveCoalesce { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>With at least <see cref="LiveBusyViewers"/> viewers, positions leave at most once per this interval instead:
    /// fewer, larger frames (one socket write per viewer per interval), still well inside the 2 s promise.</summary>
    public TimeSpan LiveBusyCoalesce { get; set; } = TimeSpan.FromSeconds(1);

    public int LiveBusyViewers { get; set; } = 1000;

    /// <summary>Live map: frames buffered per viewer before a slow viewer is dropped (its browser reconnects).</summary>
    public int LiveClientBuffer { get; set; } = 64;

    /// <summary>Comment line on an idle live stream, so proxies keep it open.</summary>
    public TimeSpan LiveHeartbeat { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Operator view: a unit that has not reported for longer is listed as not reporting.</summary>
    public TimeSpan StaleAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Base-map tile URL template ({z}/{x}/{y}); empty: vector layers on a plain background only.</summary>
    public string TileUrl { get; set; } = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png";

    /// <summary>Attribution shown with the tiles (HTML-escaped when shown).</summary>
    public string TileAttribution { get; set; } = "地理院タイル (国土地理院)";

    /// <summary>MQTT ingestion: broker URI such as <c>mqtt://127.0.0.1:1883</c>; empty: off.</summary>
    public SnowMqttOptions Mqtt { get; set; } = new();
}

public sealed class SnowMqttOptions
{
    /// <summary><c>mqtt://host:port</c> (or <c>host:port</c>); empty turns MQTT ingestion off.</summary>
    public string Server { get; set; } = "";

    /// <summary>Topic filter; the unit's id is the last level (<c>machi/snow/{deviceId}</c>).</summary>
    public string Topic { get; set; } = "machi/snow/+";

    public string? Username { get; set; }

    public string? Password { get; set; }
}
