namespace Machi.Broker.Subscriptions;

/// <summary>Notification delivery settings, bound from "Broker:Subscriptions".</summary>
public sealed class SubscriptionOptions
{
    /// <summary>Attempts per notification before it is dead-lettered (kept, marked dead, counted as failed).</summary>
    public int MaxAttempts { get; set; } = 12;

    /// <summary>Wait before the first retry; doubled after each failure up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan InitialRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long one notification (an HTTP request, an MQTT publish) may take before it counts as failed.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Notifications in flight to one endpoint at once (never two for the same entity).</summary>
    public int ConcurrencyPerEndpoint { get; set; } = 4;

    /// <summary>Changes read from the change log per matching transaction.</summary>
    public int MatchBatchSize { get; set; } = 256;

    /// <summary>Most entities in one periodic (timeInterval) notification.</summary>
    public int MaxPeriodicEntities { get; set; } = 1000;

    /// <summary>
    /// A PEM file of certificate authorities trusted for https and mqtts notification endpoints besides the system's
    /// (e.g. the city's own CA for its MQTT broker); host names are always checked.
    /// </summary>
    public string? TrustedCertificateAuthorities { get; set; }
}
