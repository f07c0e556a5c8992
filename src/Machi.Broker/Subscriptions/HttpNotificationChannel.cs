using System.Buffers;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Machi.Broker.Http;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// HTTP binding of notifications (clause 6.3.18 / 6.10–6.11): POST of a Notification to endpoint.uri, Content-Type
/// per endpoint.accept; application/json names the subscription's @context in a Link header, application/ld+json
/// carries it as "@context". receiverInfo entries become headers; the tenant travels in NGSILD-Tenant.
/// </summary>
internal sealed class HttpNotificationChannel(IHttpClientFactory clients) : INotificationChannel
{
    public const string HttpClientName = "machi-notifications";

    public bool CanSend(Uri endpoint) => endpoint.Scheme is "http" or "https";

    public async Task SendAsync(NotificationMessage message, CancellationToken cancellationToken)
    {
        var subscription = message.Subscription;
        var jsonLd = subscription.Notification.Accept == MediaTypes.JsonLd;
        using var request = new HttpRequestMessage(HttpMethod.Post, subscription.Notification.Endpoint)
        {
            Content = new ByteArrayContent(Body(message, jsonLd)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(jsonLd ? MediaTypes.JsonLd : MediaTypes.Json) { CharSet = "utf-8" };
        if (!jsonLd)
        {
            request.Headers.TryAddWithoutValidation("Link", JsonLdLink.Format(subscription.ContextUrl));
        }

        if (message.Row.Tenant.Length > 0)
        {
            request.Headers.TryAddWithoutValidation(NgsiRequest.TenantHeader, message.Row.Tenant);
        }

        foreach (var (key, value) in subscription.Notification.ReceiverInfo)
        {
            request.Headers.TryAddWithoutValidation(key, value);
        }

        using var response = await clients.CreateClient(HttpClientName)
            .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new NotificationRejectedException($"The endpoint answered {(int)response.StatusCode} {response.ReasonPhrase}.");
        }
    }

    /// <summary>The Notification (clause 5.3.1): id, type, subscriptionId, notifiedAt, data, and @context for JSON-LD.</summary>
    internal static byte[] Body(NotificationMessage message, bool includeContext)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, EntityRenderer.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("id", message.Row.NotificationId);
            w.WriteString("type", "Notification");
            w.WriteString("subscriptionId", message.Row.SubscriptionId);
            w.WriteString("notifiedAt", NgsiText.FormatDateTime(message.Row.NotifiedAt));
            w.WritePropertyName("data");
            w.WriteRawValue(Encoding.UTF8.GetBytes(message.Row.DataJson), skipInputValidation: true);
            if (includeContext)
            {
                if (message.Subscription.Context.IsCore)
                {
                    w.WriteString("@context", LdContext.CoreContextUrl);
                }
                else
                {
                    w.WriteString("@context", message.Subscription.ContextUrl);
                }
            }

            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
