using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>One MQTT message as a subscriber saw it: topic, QoS, MQTT 5 content type and the parsed JSON payload.</summary>
public sealed record ReceivedMqttMessage(string Topic, int QoS, string? ContentType, JsonNode Payload)
{
    public JsonNode Metadata => Payload["metadata"]!;

    /// <summary>The NGSI-LD Notification.</summary>
    public JsonNode Body => Payload["body"]!;

    public JsonNode Entity => Body["data"]![0]!;
}

/// <summary>
/// An MQTT 5 client (MQTTnet) subscribed to one topic with QoS 2, recording what arrives. Its session persists
/// (clean start off), and it reconnects by itself when the broker goes away and comes back.
/// </summary>
public sealed class MqttSubscriber : IAsyncDisposable
{
    private readonly ConcurrentQueue<ReceivedMqttMessage> _received = new();
    private readonly CancellationTokenSource _disposing = new();
    private readonly IMqttClient _client;
    private readonly MqttClientOptions _options;
    private readonly string _topic;

    private MqttSubscriber(MosquittoBroker broker, string topic)
    {
        _topic = topic;
        _client = new MqttClientFactory().CreateMqttClient();
        _options = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", broker.Port)
            .WithClientId("machi-test-" + Guid.NewGuid().ToString("N")[..12])
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCleanStart(false)
            .WithSessionExpiryInterval(3600)
            .WithTimeout(TimeSpan.FromSeconds(5))
            .Build();
        _client.ApplicationMessageReceivedAsync += e =>
        {
            var message = e.ApplicationMessage;
            var payload = JsonNode.Parse(Encoding.UTF8.GetString(message.Payload))!;
            _received.Enqueue(new ReceivedMqttMessage(message.Topic, (int)message.QualityOfServiceLevel, message.ContentType, payload));
            return Task.CompletedTask;
        };
    }

    public IReadOnlyList<ReceivedMqttMessage> Received => [.. _received];

    public static async Task<MqttSubscriber> ConnectAsync(MosquittoBroker broker, string topic)
    {
        var subscriber = new MqttSubscriber(broker, topic);
        await subscriber.ConnectOnceAsync();
        subscriber._client.DisconnectedAsync += e =>
        {
            // Failed attempts to reconnect raise this too; only a lost connection starts the loop.
            if (e.ClientWasConnected && !subscriber._disposing.IsCancellationRequested)
            {
                _ = Task.Run(subscriber.ReconnectAsync);
            }

            return Task.CompletedTask;
        };
        return subscriber;
    }

    /// <summary>Waits until at least <paramref name="count"/> messages have arrived; fails the test after the timeout.</summary>
    public async Task<IReadOnlyList<ReceivedMqttMessage>> WaitForAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(15));
        while (_received.Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"expected {count} MQTT messages, got {_received.Count}:\n{string.Join('\n', _received.Select(r => r.Payload.ToJsonString()))}");
            await Task.Delay(25);
        }

        return Received;
    }

    public async ValueTask DisposeAsync()
    {
        await _disposing.CancelAsync();
        if (_client.IsConnected)
        {
            await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
        }

        _client.Dispose();
        _disposing.Dispose();
    }

    private async Task ConnectOnceAsync()
    {
        var result = await _client.ConnectAsync(_options, _disposing.Token);
        if (!result.IsSessionPresent)
        {
            await _client.SubscribeAsync(_topic, MqttQualityOfServiceLevel.ExactlyOnce, _disposing.Token);
        }
    }

    private async Task ReconnectAsync()
    {
        while (!_disposing.IsCancellationRequested && !_client.IsConnected)
        {
            try
            {
                await ConnectOnceAsync();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                try
                {
                    await Task.Delay(100, _disposing.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
