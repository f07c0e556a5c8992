using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Machi.Broker.Http;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// MQTT binding of notifications (clause 7): each notification is published to the topic of endpoint.uri as
/// {"metadata": {…}, "body": Notification}, where metadata carries what HTTP sends as headers (Content-Type, Link,
/// NGSILD-Tenant, receiverInfo). One long-lived connection per broker (host, port, credentials, version) serves every
/// topic on it; a broken connection is replaced on the next send. A send completes when the broker acknowledged the
/// publish (QoS 1 and 2) or it was written to the socket (QoS 0), and throws otherwise, so that the delivery's
/// retries, backoff and dead letters apply as for HTTP.
/// </summary>
internal sealed class MqttNotificationChannel(IOptions<SubscriptionOptions> options, EndpointCertificates certificates, ILogger<MqttNotificationChannel> logger)
    : INotificationChannel, IAsyncDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<MqttBroker, MqttConnection> _connections = new();
    private readonly MqttClientFactory _factory = new();
    private readonly TimeSpan _requestTimeout = options.Value.RequestTimeout;
    private readonly ILogger _logger = logger;
    private readonly EndpointCertificates _certificates = certificates;
    private volatile bool _disposed;

    public bool CanSend(Uri endpoint) => MqttEndpoint.IsMqtt(endpoint);

    public async Task SendAsync(NotificationMessage message, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var notification = message.Subscription.Notification;
        if (!MqttEndpoint.TryParse(notification.Endpoint, notification.NotifierInfo, out var endpoint, out var error))
        {
            throw new NotificationRejectedException(error); // the parser lets no such endpoint in; kept for old rows
        }

        var connection = _connections.GetOrAdd(endpoint.Broker, broker => new MqttConnection(this, broker));
        var builder = new MqttApplicationMessageBuilder()
            .WithTopic(endpoint.Topic)
            .WithPayload(Payload(message))
            .WithQualityOfServiceLevel((MqttQualityOfServiceLevel)endpoint.QoS);
        if (endpoint.Broker.Version == MqttVersion.V500)
        {
            builder.WithContentType(MediaTypes.Json).WithPayloadFormatIndicator(MqttPayloadFormatIndicator.CharacterData);
        }

        await connection.PublishAsync(builder.Build(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The MQTT notification message: {"metadata": {Content-Type, Link, NGSILD-Tenant, receiverInfo…}, "body": Notification}.</summary>
    internal static byte[] Payload(NotificationMessage message)
    {
        var subscription = message.Subscription;
        var jsonLd = subscription.Notification.Accept == MediaTypes.JsonLd;
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, EntityRenderer.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteStartObject("metadata");
            w.WriteString("Content-Type", jsonLd ? MediaTypes.JsonLd : MediaTypes.Json);
            if (!jsonLd)
            {
                w.WriteString("Link", JsonLdLink.Format(subscription.ContextUrl));
            }

            if (message.Row.Tenant.Length > 0)
            {
                w.WriteString(NgsiRequest.TenantHeader, message.Row.Tenant);
            }

            foreach (var (key, value) in subscription.Notification.ReceiverInfo)
            {
                w.WriteString(key, value);
            }

            w.WriteEndObject();
            w.WritePropertyName("body");
            w.WriteRawValue(HttpNotificationChannel.Body(message, jsonLd), skipInputValidation: true);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var connection in _connections.Values)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        _connections.Clear();
    }

    /// <summary>The connection to one broker; callers that find it down share one attempt to bring it back.</summary>
    private sealed class MqttConnection(MqttNotificationChannel owner, MqttBroker broker) : IAsyncDisposable
    {
        private readonly Lock _gate = new();
        private readonly CancellationTokenSource _closing = new();
        private Task<IMqttClient>? _client;

        public async Task PublishAsync(MqttApplicationMessage message, CancellationToken cancellationToken)
        {
            IMqttClient? client = null;
            try
            {
                client = await ClientAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                var result = await client.PublishAsync(message, cancellationToken).ConfigureAwait(false);
                if (!result.IsSuccess)
                {
                    throw new NotificationRejectedException($"The MQTT broker {broker} refused the publish to '{message.Topic}': {result.ReasonCode} {result.ReasonString}".TrimEnd());
                }
            }
            catch (Exception ex) when (ex is MqttCommunicationException or MqttProtocolViolationException or MqttConfigurationException or SocketException)
            {
                Discard(client);
                throw new IOException($"MQTT broker {broker}: {ex.Message}", ex);
            }
            catch (OperationCanceledException) when (client is not null)
            {
                Discard(client); // no acknowledgement in time: the connection is suspect
                throw;
            }
        }

        /// <summary>The connected client, or the attempt under way to connect one.</summary>
        private Task<IMqttClient> ClientAsync()
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_closing.IsCancellationRequested, this);
                if (_client is { IsCompleted: false } || _client is { IsCompletedSuccessfully: true, Result.IsConnected: true })
                {
                    return _client;
                }

                if (_client is { IsCompletedSuccessfully: true } old)
                {
                    old.Result.Dispose();
                }

                _client = ConnectAsync();
                return _client;
            }
        }

        private async Task<IMqttClient> ConnectAsync()
        {
            var builder = new MqttClientOptionsBuilder()
                .WithTcpServer(broker.Host, broker.Port)
                .WithClientId("machi-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)))
                .WithProtocolVersion(broker.Version == MqttVersion.V500 ? MqttProtocolVersion.V500 : MqttProtocolVersion.V311)
                .WithCleanSession(true)
                .WithKeepAlivePeriod(TimeSpan.FromSeconds(30))
                .WithTimeout(owner._requestTimeout);
            if (broker.User is not null)
            {
                builder.WithCredentials(broker.User, broker.Password is null ? null : Encoding.UTF8.GetBytes(broker.Password));
            }

            if (broker.Secure)
            {
                builder.WithTlsOptions(tls => tls.UseTls().WithTargetHost(broker.Host)
                    .WithCertificateValidationHandler(e => owner._certificates.Validate(e.Certificate, e.Chain, e.SslPolicyErrors)));
            }

            var client = owner._factory.CreateMqttClient();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
            timeout.CancelAfter(ConnectTimeout);
            try
            {
                var result = await client.ConnectAsync(builder.Build(), timeout.Token).ConfigureAwait(false);
                if (result.ResultCode != MqttClientConnectResultCode.Success)
                {
                    throw new NotificationRejectedException($"The MQTT broker {broker} refused the connection: {result.ResultCode} {result.ReasonString}".TrimEnd());
                }

                owner._logger.LogDebug("Connected to the MQTT broker {Broker}", broker);
                return client;
            }
            catch (Exception ex)
            {
                client.Dispose();
                if (ex is OperationCanceledException && !_closing.IsCancellationRequested)
                {
                    throw new IOException($"No connection to the MQTT broker {broker} within {ConnectTimeout.TotalSeconds:0} s.", ex);
                }

                throw;
            }
        }

        /// <summary>Drops a client that failed, unless another caller already replaced it.</summary>
        private void Discard(IMqttClient? client)
        {
            if (client is null)
            {
                return;
            }

            lock (_gate)
            {
                if (_client is { IsCompletedSuccessfully: true } current && ReferenceEquals(current.Result, client))
                {
                    _client = null;
                }
                else
                {
                    return;
                }
            }

            client.Dispose();
        }

        public async ValueTask DisposeAsync()
        {
            Task<IMqttClient>? client;
            lock (_gate)
            {
                _closing.Cancel();
                client = _client;
                _client = null;
            }

            if (client is not null)
            {
                try
                {
                    var connected = await client.ConfigureAwait(false);
                    await connected.TryDisconnectAsync().ConfigureAwait(false);
                    connected.Dispose();
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException or MqttCommunicationException or NotificationRejectedException or SocketException)
                {
                    // It never connected; nothing to close.
                }
            }

            _closing.Dispose();
        }
    }
}
