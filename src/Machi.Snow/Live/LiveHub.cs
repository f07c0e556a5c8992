using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Machi.Snow.Ingestion;
using Machi.Snow.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Machi.Snow.Live;

/// <summary>
/// Fans positions out to every live-map viewer. Positions collect for at most <see cref="SnowOptions.LiveCoalesce"/>,
/// then one server-sent event holding all of them is rendered once (the same bytes for everyone) and handed to each
/// viewer's bounded queue; a viewer too slow to keep up is dropped (its browser reconnects and starts from a snapshot).
/// </summary>
internal sealed class LiveHub(IOptions<SnowOptions> options, TimeProvider time) : BackgroundService
{
    private readonly ConcurrentDictionary<Viewer, byte> _viewers = new();
    private readonly Channel<LivePosition> _incoming = Channel.CreateUnbounded<LivePosition>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, LivePosition> _latest = new(StringComparer.Ordinal);
    private long _frame;

    public int ViewerCount => _viewers.Count;

    /// <summary>The last known position of every unit (the snapshot a new viewer starts from).</summary>
    public ICollection<LivePosition> Latest => _latest.Values;

    public void Seed(LivePosition position) => _latest[position.DeviceId] = position;

    public void Publish(LivePosition position)
    {
        _latest.AddOrUpdate(position.DeviceId, position, (_, old) => old.Time > position.Time ? old : position);
        _incoming.Writer.TryWrite(position);
    }

    public Viewer Join()
    {
        var viewer = new Viewer(options.Value.LiveClientBuffer);
        _viewers[viewer] = 0;
        return viewer;
    }

    public void Leave(Viewer viewer) => _viewers.TryRemove(viewer, out _);

    /// <summary>An SSE frame: <c>event: NAME</c>, <c>id:</c>, and a JSON array of positions on one data line.</summary>
    public static byte[] Render(string eventName, long id, IEnumerable<LivePosition> positions)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        buffer.Write(Encoding.UTF8.GetBytes($"event: {eventName}\nid: {id}\ndata: "));
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var p in positions)
            {
                p.Write(json);
            }

            json.WriteEndArray();
        }

        buffer.Write("\n\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Positions as a plain JSON array.</summary>
    public static byte[] RenderArray(IEnumerable<LivePosition> positions)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var p in positions)
            {
                p.Write(json);
            }

            json.WriteEndArray();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public byte[] Snapshot() => Render("snapshot", Interlocked.Read(ref _frame), _latest.Values);

    private static readonly byte[] KeepAlive = ": keep-alive\n\n"u8.ToArray();
    private long _lastFrameAt;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var heartbeat = HeartbeatAsync(stoppingToken);
        var pending = new List<LivePosition>();
        try
        {
            while (await _incoming.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                // Wait a little so positions arriving together leave together, then take everything waiting.
                var coalesce = _viewers.Count >= options.Value.LiveBusyViewers ? options.Value.LiveBusyCoalesce : options.Value.LiveCoalesce;
                if (coalesce > TimeSpan.Zero && !_viewers.IsEmpty)
                {
                    await Task.Delay(coalesce, time, stoppingToken).ConfigureAwait(false);
                }

                pending.Clear();
                while (_incoming.Reader.TryRead(out var position))
                {
                    pending.Add(position);
                }

                if (pending.Count == 0 || _viewers.IsEmpty)
                {
                    continue;
                }

                OfferAll(Render("positions", Interlocked.Increment(ref _frame), pending));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await heartbeat.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private void OfferAll(byte[] frame)
    {
        Interlocked.Exchange(ref _lastFrameAt, time.GetTimestamp());
        foreach (var viewer in _viewers.Keys)
        {
            if (!viewer.Offer(frame))
            {
                Leave(viewer);
            }
        }
    }

    /// <summary>
    /// One timer for every viewer: when nothing was sent for a heartbeat interval, a comment line goes to all of them
    /// (a timer per viewer would mean thousands of timers).
    /// </summary>
    private async Task HeartbeatAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.LiveHeartbeat;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            if (time.GetElapsedTime(Interlocked.Read(ref _lastFrameAt)) >= interval && !_viewers.IsEmpty)
            {
                OfferAll(KeepAlive);
            }
        }
    }

    /// <summary>One connected browser: a bounded queue of rendered frames.</summary>
    internal sealed class Viewer(int capacity)
    {
        private readonly Channel<byte[]> _frames = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });

        public ChannelReader<byte[]> Frames => _frames.Reader;

        /// <summary>False when the queue is full: the viewer is dropped and its stream ends.</summary>
        public bool Offer(byte[] frame)
        {
            if (_frames.Writer.TryWrite(frame))
            {
                return true;
            }

            _frames.Writer.TryComplete();
            return false;
        }
    }
}

/// <summary>What the map needs of one position.</summary>
internal sealed record LivePosition(string DeviceId, string Name, double Lat, double Lon, double? Heading, double? SpeedKmh, PlowState State, DateTimeOffset Time, bool Simulated)
{
    public static LivePosition From(TrackFix fix, DeviceRecord? device) =>
        new(fix.DeviceId, device?.Name ?? fix.DeviceId, fix.Lat, fix.Lon, fix.Heading, fix.SpeedKmh, fix.State, fix.Time, device?.Simulated ?? false);

    public void Write(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("id", DeviceId);
        json.WriteString("name", Name);
        json.WriteNumber("lat", Math.Round(Lat, 6));
        json.WriteNumber("lon", Math.Round(Lon, 6));
        if (Heading is { } heading)
        {
            json.WriteNumber("heading", Math.Round(heading, 1));
        }

        if (SpeedKmh is { } speed)
        {
            json.WriteNumber("speed", Math.Round(speed, 1));
        }

        json.WriteString("state", PlowStates.Name(State));
        json.WriteString("t", Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture));
        if (Simulated)
        {
            json.WriteBoolean("simulated", true);
        }

        json.WriteEndObject();
    }
}
