using System.Text.Json.Nodes;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;

namespace Machi.Broker.Subscriptions;

/// <summary>The notification triggers of clause 5.2.12 (notificationTrigger).</summary>
[Flags]
internal enum Triggers
{
    None = 0,
    EntityCreated = 1,
    EntityUpdated = 2,
    EntityDeleted = 4,
    AttributeCreated = 8,
    AttributeUpdated = 16,
    AttributeDeleted = 32,
}

/// <summary>
/// A subscription ready for matching: the document as its client wrote it (names in <see cref="Context"/>), and
/// what was compiled from it: the entity filter (selectors, q, geoQ, scopeQ, evaluated by <see cref="EntityFilter"/>),
/// watched attributes and notification settings with names expanded.
/// </summary>
internal sealed class Subscription
{
    public required string Tenant { get; init; }

    public required string Id { get; init; }

    /// <summary>The members as given (compacted with <see cref="Context"/>), without read-only ones.</summary>
    public required JsonObject Document { get; init; }

    /// <summary>The @context the subscription was created with: its names, and its notifications, use it.</summary>
    public required LdContext Context { get; init; }

    /// <summary>The URL a notification's Link header (or @context) names: jsonldContext.</summary>
    public required string ContextUrl { get; init; }

    public required EntityFilter Filter { get; init; }

    /// <summary>Who created it: its notifications carry only what this caller may see (null: created before owners were recorded).</summary>
    public Access.Caller? Owner { get; set; }

    /// <summary>Expanded names; null: any attribute.</summary>
    public IReadOnlySet<string>? WatchedAttributes { get; init; }

    public Triggers Triggers { get; init; }

    public TimeSpan? Throttling { get; init; }

    public TimeSpan? TimeInterval { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public bool IsActive { get; init; } = true;

    public required NotificationSettings Notification { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ModifiedAt { get; init; }

    public bool IsExpired(DateTimeOffset now) => ExpiresAt is { } at && at <= now;

    /// <summary>active, paused or expired (clause 5.2.12 status).</summary>
    public string Status(DateTimeOffset now) => IsExpired(now) ? "expired" : IsActive ? "active" : "paused";
}

/// <summary>NotificationParams (clause 5.2.14) with attribute names expanded.</summary>
internal sealed record NotificationSettings
{
    public IReadOnlySet<string>? Attributes { get; init; }

    public Representation Format { get; init; } = Representation.Normalized;

    public bool ShowChanges { get; init; }

    public bool SysAttrs { get; init; }

    public required Uri Endpoint { get; init; }

    /// <summary>application/json (default) or application/ld+json.</summary>
    public string Accept { get; init; } = "application/json";

    /// <summary>Headers sent with every notification (endpoint.receiverInfo).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ReceiverInfo { get; init; } = [];

    /// <summary>Settings for the channel (endpoint.notifierInfo), e.g. MQTT QoS.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> NotifierInfo { get; init; } = [];

    public LanguagePreference? Lang { get; init; }
}

/// <summary>The delivery counters of a subscription (the read-only members of NotificationParams).</summary>
internal sealed record DeliveryCounters(long TimesSent, long TimesFailed, DateTimeOffset? LastNotification, DateTimeOffset? LastSuccess, DateTimeOffset? LastFailure)
{
    public static DeliveryCounters None { get; } = new(0, 0, null, null, null);

    /// <summary>"failed" when the last attempt failed, else "ok".</summary>
    public string Status => LastFailure is { } f && (LastSuccess is null || LastSuccess < f) ? "failed" : "ok";
}
