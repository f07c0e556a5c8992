using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.AspNetCore.Http;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Validation;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Machi.Trust.Connect;

/// <summary>What a request's <c>Authorization</c> header proved.</summary>
public enum TokenState
{
    /// <summary>No <c>Authorization</c> header: an anonymous caller.</summary>
    None,

    /// <summary>A valid Machi access token.</summary>
    Valid,

    /// <summary>Credentials that are not a valid Machi access token (expired, signed by another key, revoked, malformed…).</summary>
    Invalid,
}

/// <summary>The identity an access token carries, as the platform's APIs use it.</summary>
/// <param name="Subject">The person the token acts for; null when a client acts for itself (client credentials).</param>
public sealed record TokenIdentity(string? Subject, string ClientId, IReadOnlySet<string> Scopes, IReadOnlySet<string> Roles);

/// <summary>
/// Validates access tokens for the platform's APIs (the broker above all) without paying OpenIddict's full validation,
/// which reads the token's database entry, on every request: a token validated once is remembered for at most
/// <see cref="RecheckInterval"/> (and never past its expiry). A revocation on this node forgets every remembered token at
/// once; one on another node takes effect within <see cref="RecheckInterval"/>.
/// </summary>
public sealed class AccessTokens(OpenIddictValidationService validation, TimeProvider time)
{
    public static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(30);
    private const int MaxRemembered = 50_000;

    private readonly ConcurrentDictionary<string, (TokenIdentity Identity, DateTimeOffset Until)> _remembered = new(StringComparer.Ordinal);

    public async ValueTask<(TokenState State, TokenIdentity? Identity)> AuthenticateAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var header = http.Request.Headers.Authorization;
        if (header.Count == 0)
        {
            return (TokenState.None, null);
        }

        var value = header.ToString();
        if (!value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || value.Length <= 7)
        {
            return (TokenState.Invalid, null);
        }

        // A token seen before is looked up in place: a token is ~1 KB, and every request of a client sends it.
        var now = time.GetUtcNow();
        if (_remembered.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(value.AsSpan(7).Trim(), out var known) && known.Until > now)
        {
            return (TokenState.Valid, known.Identity);
        }

        var token = value[7..].Trim();

        ClaimsPrincipal principal;
        try
        {
            principal = await validation.ValidateAccessTokenAsync(token, http.RequestAborted).ConfigureAwait(false);
        }
        catch (OpenIddictExceptions.ProtocolException)
        {
            _remembered.TryRemove(token, out _);
            return (TokenState.Invalid, null);
        }

        var identity = IdentityOf(principal);
        var expires = principal.GetExpirationDate() ?? now;
        var until = expires < now + RecheckInterval ? expires : now + RecheckInterval;
        if (_remembered.Count >= MaxRemembered)
        {
            _remembered.Clear();
        }

        _remembered[token] = (identity, until);
        return (TokenState.Valid, identity);
    }

    /// <summary>Forgets every remembered token, so the next request of each is validated in full (after a revocation).</summary>
    public void ForgetAll() => _remembered.Clear();

    private static TokenIdentity IdentityOf(ClaimsPrincipal principal)
    {
        var subject = principal.GetClaim(Claims.Subject);
        var client = principal.GetClaim(Claims.ClientId) ?? principal.GetClaim(Claims.AuthorizedParty) ?? subject ?? "";

        // Client credentials put the client id in sub: the client acts for itself, for no person.
        var person = string.Equals(subject, client, StringComparison.Ordinal) ? null : subject;
        return new TokenIdentity(
            person,
            client,
            new HashSet<string>(principal.GetScopes(), StringComparer.Ordinal),
            new HashSet<string>(principal.GetClaims(Claims.Role), StringComparer.Ordinal));
    }

    /// <summary>Clears the remembered tokens whenever the revocation endpoint has revoked one.</summary>
    internal sealed class OnRevocation(AccessTokens tokens) : IOpenIddictServerHandler<OpenIddictServerEvents.HandleRevocationRequestContext>
    {
        public ValueTask HandleAsync(OpenIddictServerEvents.HandleRevocationRequestContext context)
        {
            tokens.ForgetAll();
            return ValueTask.CompletedTask;
        }
    }
}
