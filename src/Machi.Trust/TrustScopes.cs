using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Machi.Trust;

/// <summary>A scope a client may ask for; <paramref name="IsApi"/> scopes grant access to Machi's APIs.</summary>
public sealed record TrustScope(string Name, bool IsApi, string Description);

/// <summary>The one list of scopes the identity provider knows. Add new API scopes here.</summary>
public static class TrustScopes
{
    /// <summary>The audience (<c>aud</c>) of every access token: the Machi platform's own APIs.</summary>
    public const string Audience = "machi";

    public const string NgsiRead = "ngsi:read";
    public const string NgsiWrite = "ngsi:write";
    public const string NgsiAdmin = "ngsi:admin";

    public static IReadOnlyList<TrustScope> All { get; } =
    [
        new(Scopes.OpenId, IsApi: false, "Sign in (OpenID Connect)"),
        new(Scopes.Profile, IsApi: false, "Name and role"),
        new(Scopes.Email, IsApi: false, "E-mail address"),
        new(Scopes.OfflineAccess, IsApi: false, "Refresh tokens"),
        new(NgsiRead, IsApi: true, "Read NGSI-LD entities, subscriptions and history"),
        new(NgsiWrite, IsApi: true, "Create, change and delete NGSI-LD entities"),
        new(NgsiAdmin, IsApi: true, "Manage the broker: registrations, contexts, tenants"),
    ];

    public static IEnumerable<string> Names => All.Select(s => s.Name);

    public static bool IsKnown(string name) => All.Any(s => string.Equals(s.Name, name, StringComparison.Ordinal));
}
