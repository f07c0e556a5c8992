using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Exceptions;

namespace Machi.Snow.Ingestion;

/// <summary>
/// Positions over MQTT: subscribes to <c>Snow:Mqtt:Topic</c> (default <c>machi/snow/+</c>) on <c>Snow:Mqtt:Server</c>;
/// the topic's last level is the unit's id and the payload a JSON object with the OsmAnd fields (<c>lat</c>, <c>lon</c>,
/// <c>timestamp</c>, <c>speed</c> in knots, <c>bearing</c>, <c>plow</c>, <c>token</c> …). Refusals are counted as for
/// HTTP; MQTT has no answer to send, so they are logged too. Reconnects with backoff while the broker is away.
/// </summary>
internal sealed class MqttIngestion(SnowIngestion ingestion, IOptions<SnowOptions> options, TimeProvider time, ILogger<MqttIngestion> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value.Mqtt;
        if (string.IsNullOrWhiteSpace(settings.Server))
        {
            return;
        }

        var (host, port) = ParseServer(settings.Server);
        var delay = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested)
        {
            using var client = new MqttClientFactory().CreateMqttClient();
            var disconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            client.DisconnectedAsync += _ =>
            {
                disconnected.TrySetResult();
                return Task.CompletedTask;
            };
            client.ApplicationMessageReceivedAsync += async e =>
            {
                var topic = e.ApplicationMessage.Topic;
                var deviceId = topic[(topic.LastIndexOf('/') + 1)..];
                var payload = e.ApplicationMessage.Payload;
                var parsed = Parse(deviceId, payload.IsSingleSegment ? payload.First : payload.ToArray(), time.GetUtcNow());
                try
                {
                    if (await ingestion.IngestAsync(parsed, stoppingToken).ConfigureAwait(false) is { } rejection)
                    {
                        logger.LogInformation("MQTT position on {Topic} rejected: {Reason} ({Detail})", topic, rejection.Code, rejection.Detail);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Not acknowledged to the broker's client either way (QoS 1 is acknowledged on return); log and go on.
                    logger.LogError(ex, "MQTT position on {Topic} could not be stored", topic);
                }
            };
            try
            {
                var builder = new MqttClientOptionsBuilder()
                    .WithTcpServer(host, port)
                    .WithClientId("machi-snow-" + Environment.ProcessId)
                    .WithCleanSession(true);
                if (!string.IsNullOrEmpty(settings.Username))
                {
                    builder.WithCredentials(settings.Username, settings.Password);
                }

                await client.ConnectAsync(builder.Build(), stoppingToken).ConfigureAwait(false);
                await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                    .WithTopicFilter(settings.Topic, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build(), stoppingToken).ConfigureAwait(false);
                logger.LogInformation("Snowplow positions: subscribed to {Topic} on {Host}:{Port}", settings.Topic, host, port);
                delay = TimeSpan.FromMilliseconds(250);
                await disconnected.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is MqttCommunicationException or MqttProtocolViolationException or MqttConfigurationException
                or InvalidOperationException or IOException or System.Net.Sockets.SocketException)
            {
                logger.LogWarning("MQTT ingestion: {Host}:{Port} unavailable ({Message}); retrying in {Delay}", host, port, e.Message, delay);
            }

            await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
        }
    }

    /// <summary>A JSON payload's fields as OsmAnd fields (numbers and strings alike); anything else is malformed.</summary>
    public static ParseResult Parse(string deviceId, ReadOnlyMemory<byte> payload, DateTimeOffset now)
    {
        var fields = new List<KeyValuePair<string, string?>> { new("id", deviceId) };
        try
        {
            using var document = JsonDocument.Parse(payload);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return ParseResult.Bad("The payload must be a JSON object.");
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.NameEquals("id"))
                {
                    continue;
                }

                fields.Add(new(property.Name, property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString(),
                    JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => property.Value.GetRawText(),
                    JsonValueKind.Null => null,
                    _ => "?",
                }));
            }
        }
        catch (JsonException)
        {
            return ParseResult.Bad("The payload is not JSON.");
        }

        return OsmAndParser.Parse(fields, null, now, source: "mqtt");
    }

    internal static (string Host, int Port) ParseServer(string server)
    {
        var text = server.Contains("://", StringComparison.Ordinal) ? server : "mqtt://" + server;
        var uri = new Uri(text);
        return (uri.Host, uri.Port > 0 ? uri.Port : 1883);
    }
}
