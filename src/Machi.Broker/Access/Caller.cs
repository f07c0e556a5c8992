namespace Machi.Broker.Access;

/// <summary>
/// Who is asking the broker: an HTTP request's access token, or a Machi service calling in-process under its own client
/// identity. Every read, query, subscription and write is decided on this (same rules for both).
/// </summary>
/// <param name="Subject">The signed-in person (<c>sub</c>): a resident, staff member, clinician…; null for a client acting
/// for itself (client credentials) and for anonymous callers.</param>
/// <param name="ClientId">The OAuth client (service) the call comes through; null for anonymous callers.</param>
/// <param name="Scopes">The scopes the token grants (<c>ngsi:read</c>, <c>ngsi:write</c>, <c>ngsi:admin</c> …).</param>
/// <param name="Roles">The person's roles (resident, staff, clinician, merchant, producer).</param>
public sealed record Caller(string? Subject, string? ClientId, IReadOnlySet<string> Scopes, IReadOnlySet<string> Roles)
{
    public const string ReadScope = "ngsi:read";
    public const string WriteScope = "ngsi:write";
    public const string AdminScope = "ngsi:admin";

    /// <summary>No token: sees public data only and may not write.</summary>
    public static Caller Anonymous { get; } = new(null, null, new HashSet<string>(), new HashSet<string>());

    /// <summary>The platform itself, for its own bookkeeping (every scope; scopes never open personal data).</summary>
    public static Caller Platform { get; } = new(null, "machi", new HashSet<string> { AdminScope }, new HashSet<string>());

    /// <summary>The purpose the caller declared for this access (consent is per purpose); null when none was declared.</summary>
    public string? Purpose { get; init; }

    /// <summary>A staff member's declared emergency (break-glass) reason; null when none.</summary>
    public string? EmergencyReason { get; init; }

    public bool IsAnonymous => ClientId is null && Subject is null;

    public bool Has(string scope) => Scopes.Contains(scope) || Scopes.Contains(AdminScope);

    /// <summary>A Machi service calling the broker in-process as the client <paramref name="clientId"/>.</summary>
    public static Caller Service(string clientId, params string[] scopes) =>
        new(null, clientId, new HashSet<string>(scopes, StringComparer.Ordinal), new HashSet<string>());
}
