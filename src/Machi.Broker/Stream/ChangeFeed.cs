using System.Collections.Concurrent;
using System.Threading.Channels;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Stream;

/// <summary>
/// The one reader of the change log in this process: it follows the log and hands every change to each connected
/// stream client's bounded buffer, so a thousand browsers cost one database read per commit, not a thousand. A
/// client whose buffer is full is dropped (with the reason) rather than slowing the feed or growing memory; it
/// comes back with Last-Event-ID and replays what it missed from the log.
/// </summary>
internal sealed class ChangeFeed : BackgroundService
{
    private const int BatchSize = 256;

    private readonly IEntityStore _store;
    private readonly ILogger<ChangeFeed> _logger;
    private readonly int _capacity;
    private readonly TimeSpan _coalesce;
    private readonly int _coalesceClients;
    private readonly Lock _gate = new();
    private readonly List<FeedSubscriber> _subscribers = [];
    private long _position;

    public ChangeFeed(IEntityStore store, IOptions<BrokerOptions> options, ILogger<ChangeFeed> logger)
    {
        _store = store;
        _logger = logger;
        _capacity = Math.Max(1, options.Value.StreamClientBuffer);
        _coalesce = options.Value.StreamCoalesce;
        _coalesceClients = Math.Max(1, options.Value.StreamCoalesceClients);
        _position = store.LastChangeSeq;
    }

    /// <summary>Registers a client: it receives every change after <see cref="FeedSubscriber.StartSeq"/>.</summary>
    public FeedSubscriber Subscribe()
    {
        lock (_gate)
        {
            var subscriber = new FeedSubscriber(_capacity, _position);
            _subscribers.Add(subscriber);
            return subscriber;
        }
    }

    public void Unsubscribe(FeedSubscriber subscriber)
    {
        lock (_gate)
        {
            _subscribers.Remove(subscriber);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await _store.WaitForChangeAsync(_position, stoppingToken).ConfigureAwait(false);

                // With no client to hand them to, the changes need not even be read: the position moves past them (a
                // client that connects later starts there and replays anything older from the log itself).
                lock (_gate)
                {
                    if (_subscribers.Count == 0)
                    {
                        _position = Math.Max(_position, _store.LastChangeSeq);
                        continue;
                    }
                }

                var changes = await _store.ReadChangesAsync(_position, BatchSize, stoppingToken).ConfigureAwait(false);
                if (changes.Count == 0)
                {
                    // Pruned under us (nothing between our position and the last seq): there is nothing to hand on.
                    lock (_gate)
                    {
                        _position = Math.Max(_position, _store.LastChangeSeq);
                    }

                    continue;
                }

                Publish(changes);

                // Many clients: let changes gather for a moment, so each client handles them in one wake-up and write.
                int clients;
                lock (_gate)
                {
                    clients = _subscribers.Count;
                }

                if (clients >= _coalesceClients && _coalesce > TimeSpan.Zero)
                {
                    await Task.Delay(_coalesce, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Reading the change log for stream clients failed; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken).ConfigureAwait(false);
            }
        }

        lock (_gate)
        {
            foreach (var subscriber in _subscribers)
            {
                subscriber.Drop("the server is shutting down");
            }

            _subscribers.Clear();
        }
    }

    private void Publish(IReadOnlyList<EntityChange> changes)
    {
        lock (_gate)
        {
            foreach (var change in changes)
            {
                var item = new FeedChange(change);
                for (var i = _subscribers.Count - 1; i >= 0; i--)
                {
                    if (!_subscribers[i].Offer(item))
                    {
                        _subscribers[i].Drop($"the client fell more than {_capacity} changes behind");
                        _subscribers.RemoveAt(i);
                    }
                }
            }

            _position = changes[^1].Seq;
        }
    }
}

/// <summary>One stream client's buffer of changes, filled by the feed and read by the client's response loop.</summary>
internal sealed class FeedSubscriber(int capacity, long startSeq)
{
    private readonly Channel<FeedChange> _buffer = Channel.CreateBounded<FeedChange>(
        new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    /// <summary>The feed's position when the client joined: every later change comes through <see cref="Reader"/>.</summary>
    public long StartSeq { get; } = startSeq;

    public ChannelReader<FeedChange> Reader => _buffer.Reader;

    /// <summary>Why the feed stopped serving this client (the buffer holds what came before), or null.</summary>
    public string? DropReason { get; private set; }

    public bool Offer(FeedChange change) => _buffer.Writer.TryWrite(change);

    public void Drop(string reason)
    {
        DropReason = reason;
        _buffer.Writer.TryComplete();
    }
}

/// <summary>
/// A change shared by every client; its states are decoded once, by whichever client needs them first, and the
/// event it makes in a view (a stream's tenant, filter and rendering) is written once per view: clients that asked
/// the same thing (a map page open in a thousand browsers) share the bytes. The decoded entities parse payloads on
/// demand, which is not thread-safe, so an event is written holding a lock on this object; the lock is taken once
/// per view and change, never once per client.
/// </summary>
internal sealed class FeedChange(EntityChange change)
{
    private readonly Lazy<Entity?> _before = new(change.BeforeEntity);
    private readonly Lazy<Entity?> _after = new(change.AfterEntity);
    private readonly ConcurrentDictionary<string, Lazy<byte[]>> _events = new(StringComparer.Ordinal);

    public EntityChange Change { get; } = change;

    public Entity? Before => _before.Value;

    public Entity? After => _after.Value;

    /// <summary>The event (empty: none) this change makes in the view named <paramref name="view"/>, written by <paramref name="write"/> once.</summary>
    public byte[] EventFor(string view, Func<FeedChange, byte[]> write) =>
        _events.GetOrAdd(view, _ => new Lazy<byte[]>(() =>
        {
            lock (this)
            {
                return write(this);
            }
        })).Value;
}
