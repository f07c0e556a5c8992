using System.Globalization;
using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Machi.Trust.Clients;

/// <summary>
/// What a client is registered with. A service, device or other city OS has no redirect URI and uses client
/// credentials; a portal or app lists its redirect URIs and signs people in with authorization code + PKCE
/// (<paramref name="Public"/>: an app that cannot keep a secret). A service that uses residents' data names who
/// operates it, the purposes it asks residents to consent to and the data categories it needs: residents can consent
/// to those only.
/// </summary>
public sealed record ClientRequest(
    string Name,
    IReadOnlyList<string> Scopes,
    bool Admin = false,
    IReadOnlyList<Uri>? RedirectUris = null,
    bool Public = false,
    string? Operator = null,
    IReadOnlyList<string>? Purposes = null,
    IReadOnlyList<string>? Categories = null);

/// <summary>What the client needs to authenticate; the secret is shown once and stored only as a hash.</summary>
public sealed record ClientCredentials(string ClientId, string? ClientSecret);

/// <summary>Registers OAuth clients in OpenIddict's application store.</summary>
internal sealed class ClientRegistry(IOpenIddictApplicationManager applications)
{
    public async Task<ClientCredentials> CreateAsync(ClientRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (string.IsNullOrWhiteSpace(request.Name))
        {
            throw new ArgumentException("a client needs a name (--name)");
        }

        if (request.Scopes.FirstOrDefault(s => !TrustScopes.IsKnown(s)) is { } unknown)
        {
            throw new ArgumentException(
                $"unknown scope '{unknown}' (known: {string.Join(' ', TrustScopes.Names)})");
        }

        var redirects = request.RedirectUris ?? [];
        if (redirects.FirstOrDefault(u => !u.IsAbsoluteUri || !string.IsNullOrEmpty(u.Fragment)) is { } bad)
        {
            throw new ArgumentException($"'{bad}' is not an absolute redirect URI without a fragment");
        }

        if (request.Public && redirects.Count == 0)
        {
            throw new ArgumentException("a public client signs people in, so it needs a redirect URI (--redirect-uri)");
        }

        var purposes = ServiceProfile.Tokens(request.Purposes, "purpose");
        var categories = ServiceProfile.Tokens(request.Categories, "category");
        if ((purposes.Count == 0) != (categories.Count == 0))
        {
            throw new ArgumentException("a service that asks for consent names both its purposes (--purpose) and the data categories it needs (--category)");
        }

        var scopes = request.Admin ? TrustScopes.Names.ToList() : request.Scopes.Distinct(StringComparer.Ordinal).ToList();
        var clientId = $"{Slug(request.Name)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        var secret = request.Public ? null : Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = clientId,
            ClientSecret = secret,
            ClientType = request.Public ? ClientTypes.Public : ClientTypes.Confidential,
            DisplayName = request.Name.Trim(),

            // Consent per service and purpose comes with the consent module; until then a sign-in grants the scopes.
            ConsentType = ConsentTypes.Implicit,
        };
        ServiceProfile.Store(descriptor, request.Operator, purposes, categories);
        descriptor.Permissions.UnionWith([Permissions.Endpoints.Token, Permissions.Endpoints.Revocation]);
        if (!request.Public)
        {
            descriptor.Permissions.UnionWith([Permissions.Endpoints.Introspection, Permissions.GrantTypes.ClientCredentials]);
        }

        if (redirects.Count > 0)
        {
            descriptor.Permissions.UnionWith(
            [
                Permissions.Endpoints.Authorization, Permissions.Endpoints.EndSession,
                Permissions.GrantTypes.AuthorizationCode, Permissions.GrantTypes.RefreshToken, Permissions.ResponseTypes.Code,
            ]);
            descriptor.Requirements.Add(Requirements.Features.ProofKeyForCodeExchange);
            descriptor.RedirectUris.UnionWith(redirects);
            descriptor.PostLogoutRedirectUris.UnionWith(redirects);
        }

        foreach (var scope in scopes.Where(s => s is not (OpenIddictConstants.Scopes.OpenId or OpenIddictConstants.Scopes.OfflineAccess)))
        {
            descriptor.Permissions.Add(Permissions.Prefixes.Scope + scope);
        }

        await applications.CreateAsync(descriptor, cancellationToken).ConfigureAwait(false);
        return new ClientCredentials(clientId, secret);
    }

    private static string Slug(string name)
    {
        var slug = new string(name.Trim().ToLower(CultureInfo.InvariantCulture)
            .Select(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' ? c : '-').ToArray()).Trim('-');
        while (slug.Contains("--", StringComparison.Ordinal))
        {
            slug = slug.Replace("--", "-", StringComparison.Ordinal);
        }

        return slug.Length == 0 ? "client" : slug[..Math.Min(slug.Length, 40)];
    }
}
