using System.Threading.Channels;

namespace Machi.Portal.Alerts;

/// <summary>
/// Tells every open event stream on this node that the alerts changed; each stream then reads the active alerts and
/// sends its page the banner in that page's language.
/// </summary>
internal sealed class AlertBroadcaster
{
    private readonly Lock _gate = new();
    private readonly List<Channel<bool>> _listeners = [];

    public ChannelReader<bool> Subscribe(out IDisposable subscription)
    {
        var channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        lock (_gate)
        {
            _listeners.Add(channel);
        }

        subscription = new Unsubscribe(this, channel);
        return channel.Reader;
    }

    public int Listeners
    {
        get
        {
            lock (_gate)
            {
                return _listeners.Count;
            }
        }
    }

    public void Changed()
    {
        lock (_gate)
        {
            foreach (var listener in _listeners)
            {
                // A listener that has not read the last signal will read the newest alerts anyway.
                listener.Writer.TryWrite(true);
            }
        }
    }

    private sealed class Unsubscribe(AlertBroadcaster owner, Channel<bool> channel) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._gate)
            {
                owner._listeners.Remove(channel);
            }
        }
    }
}
