namespace Machi.Trust;

/// <summary>Identity provider settings, bound from the "Trust" configuration section (env: Machi__Trust__…).</summary>
public sealed class TrustOptions
{
    /// <summary>Directory of machi.db, the mail outbox and the data-protection keys; the host's Broker:DataDirectory.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>
    /// Refuse the OpenID Connect endpoints over plain HTTP. Off by default because Machi serves loopback HTTP out of the
    /// box and production sits behind a TLS-terminating proxy; turn it on when Kestrel itself serves HTTPS.
    /// </summary>
    public bool RequireHttps { get; set; }

    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    public TimeSpan IdentityTokenLifetime { get; set; } = TimeSpan.FromMinutes(20);

    public TimeSpan RefreshTokenLifetime { get; set; } = TimeSpan.FromDays(14);

    /// <summary>A new signing (and encryption) key is made when the newest is older than this.</summary>
    public TimeSpan KeyRotationInterval { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How often a running server checks whether its keys are due for rotation.</summary>
    public TimeSpan KeyRotationCheckInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Failed sign-ins in a row before the account is locked for <see cref="LockoutDuration"/>.</summary>
    public int MaxFailedAccessAttempts { get; set; } = 5;

    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Argon2id cost: memory in KiB, passes and lanes (OWASP's 19 MiB, 2 passes, 1 lane by default).</summary>
    public int PasswordHashMemoryKiB { get; set; } = 19 * 1024;

    public int PasswordHashIterations { get; set; } = 2;

    public int PasswordHashParallelism { get; set; } = 1;

    /// <summary>Where development mail is written as .eml files; relative to the data directory.</summary>
    public string MailOutbox { get; set; } = "mail-outbox";

    /// <summary>
    /// The address links in mail point to (e.g. https://machi.city.example). Unset, the request's own address is used,
    /// which trusts the Host header: set it in production.
    /// </summary>
    public string? PublicBaseUrl { get; set; }

    public string MailFrom { get; set; } = "Machi <no-reply@machi.localhost>";
}
