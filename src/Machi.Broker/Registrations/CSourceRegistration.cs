using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Machi.Broker.Registrations;

/// <summary>How a context source relates to the broker's own data (clause 4.3.6).</summary>
internal enum RegistrationMode
{
    /// <summary>Additive: the source's data is merged with the broker's.</summary>
    Inclusive,

    /// <summary>Proxied: the registered attributes of the registered entities come only from the source.</summary>
    Exclusive,

    /// <summary>Proxied: the broker holds none of this data; every matching request goes to the source.</summary>
    Redirect,

    /// <summary>Additive, lowest precedence: only fills in what no other source provides.</summary>
    Auxiliary,
}

/// <summary>One entity selector of a registration (EntityInfo, clause 5.2.8): types with an optional id or idPattern.</summary>
internal sealed record RegistrationEntity(string? Id, string? IdPattern, IReadOnlyList<string> Types)
{
    private Regex? _pattern;

    public Regex? Pattern => IdPattern is null ? null : _pattern ??= RegistrationParser.CompilePattern(IdPattern);
}

/// <summary>One item of information[] (RegistrationInfo, clause 5.2.10); names expanded.</summary>
internal sealed record RegistrationInfo(IReadOnlyList<RegistrationEntity>? Entities, IReadOnlyList<string>? PropertyNames, IReadOnlyList<string>? RelationshipNames)
{
    /// <summary>The registered attribute names; null when the item registers whole entities.</summary>
    public IReadOnlyList<string>? Attributes { get; } =
        PropertyNames is null && RelationshipNames is null ? null : [.. (PropertyNames ?? []).Concat(RelationshipNames ?? [])];
}

/// <summary>
/// A context source registration (clause 5.2.9). <see cref="Document"/> is the registration as stored: the spec's
/// members with entity types, attribute names and extra member names expanded to IRIs; the other properties are
/// what the broker reads from it to route requests.
/// </summary>
internal sealed class CSourceRegistration
{
    public required string Id { get; init; }

    public required JsonObject Document { get; init; }

    public required IReadOnlyList<RegistrationInfo> Information { get; init; }

    public required Uri Endpoint { get; init; }

    public RegistrationMode Mode { get; init; }

    /// <summary>The operations the source supports, operation groups resolved.</summary>
    public required IReadOnlySet<string> Operations { get; init; }

    /// <summary>The tenant to use at the source (NGSILD-Tenant of forwarded requests).</summary>
    public string? Tenant { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>management.timeout: how long to wait for the source.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>management.cooldown: how long to leave a failed source alone.</summary>
    public TimeSpan? Cooldown { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ModifiedAt { get; init; }

    public bool IsExpired(DateTimeOffset now) => ExpiresAt is { } at && at <= now;
}
