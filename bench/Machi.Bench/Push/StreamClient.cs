using System.Diagnostics;
using System.Net;

namespace Machi.Bench.Push;

/// <summary>
/// One client of <c>GET /ngsi-ld/v1/x-machi/stream</c>: it reads the event stream as it comes and notes, for each
/// change it is sent, when the read that brought it returned. Frames are cut by line in the client's own buffer;
/// of each <c>data:</c> line only the <c>"seq":</c> number is read (the stream is asked for keyValues of seq alone),
/// so one client costs a socket, a 4 KB buffer and a timestamp per change.
/// </summary>
internal sealed class StreamClient(long changes)
{
    private static readonly byte[] Data = "data: "u8.ToArray();
    private static readonly byte[] Seq = "\"seq\":"u8.ToArray();
    private static readonly byte[] DroppedEvent = "event: dropped"u8.ToArray();

    private readonly long[] _receivedAt = new long[changes];
    private long _received;

    /// <summary>Distinct changes of this run received.</summary>
    public long Received => Volatile.Read(ref _received);

    public long Duplicates { get; private set; }

    /// <summary>The stream's first bytes (its retry: line) have arrived: the broker has registered the client.</summary>
    public bool Connected { get; private set; }

    /// <summary>The broker sent <c>event: dropped</c> (the client fell behind its buffer, or shutdown).</summary>
    public bool Dropped { get; private set; }

    /// <summary>The stream ended without a dropped event.</summary>
    public bool Closed { get; private set; }

    /// <summary>Why the client never connected ("503", "HttpRequestException", …), or null.</summary>
    public string? Failure { get; private set; }

    public bool Live => Connected && !Dropped && !Closed;

    public long ReceivedAt(long change) => Volatile.Read(ref _receivedAt[change]);

    /// <summary>Connects (holding <paramref name="opening"/> until the stream has started), then reads until the
    /// stream ends or <paramref name="cancellationToken"/> fires.</summary>
    public async Task RunAsync(HttpClient client, Uri uri, SemaphoreSlim opening, Action<StreamClient> settled, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        int filled = 0;
        HttpResponseMessage? response = null;
        Stream? stream = null;
        bool released = false;
        await opening.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                Failure = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return;
            }

            stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            while (true)
            {
                int n = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                long now = Stopwatch.GetTimestamp();
                if (n == 0)
                {
                    Closed = Connected && !Dropped;
                    Failure = Connected ? null : "closed before its first line";
                    return;
                }

                if (!Connected)
                {
                    Connected = true;
                    released = true;
                    opening.Release();
                    settled(this);
                }

                filled += n;
                int consumed = Parse(buffer.AsSpan(0, filled), now);
                filled -= consumed;
                buffer.AsSpan(consumed, filled).CopyTo(buffer);
                if (filled == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The run is over.
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
            if (Connected)
            {
                Closed = !Dropped;
            }
            else
            {
                Failure = e.GetType().Name;
            }
        }
        finally
        {
            if (!released)
            {
                opening.Release();
                settled(this);
            }

            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            response?.Dispose();
        }
    }

    /// <summary>Reads the complete lines of <paramref name="text"/>; returns how many bytes they took.</summary>
    private int Parse(ReadOnlySpan<byte> text, long now)
    {
        int consumed = 0;
        while (true)
        {
            int end = text[consumed..].IndexOf((byte)'\n');
            if (end < 0)
            {
                return consumed;
            }

            var line = text.Slice(consumed, end);
            consumed += end + 1;
            if (line.StartsWith(Data))
            {
                int at = line.IndexOf(Seq);
                if (at >= 0 && TryParseNumber(line[(at + Seq.Length)..], out long change) && change >= 0 && change < _receivedAt.LongLength)
                {
                    if (_receivedAt[change] == 0)
                    {
                        Volatile.Write(ref _receivedAt[change], now);
                        Volatile.Write(ref _received, _received + 1);
                    }
                    else
                    {
                        Duplicates++;
                    }
                }
            }
            else if (line.StartsWith(DroppedEvent))
            {
                Dropped = true;
            }
        }
    }

    private static bool TryParseNumber(ReadOnlySpan<byte> digits, out long value)
    {
        value = 0;
        int i = 0;
        for (; i < digits.Length && digits[i] is >= (byte)'0' and <= (byte)'9'; i++)
        {
            value = (value * 10) + (digits[i] - '0');
        }

        return i > 0;
    }
}
