using System.Collections.Immutable;
using System.Security.Claims;
using Microsoft.AspNetCore;
using Machi.Trust.Accounts;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Machi.Trust.Connect;

/// <summary>
/// The OpenID Connect endpoints OpenIddict hands to us (passthrough): who is signing in, and what their tokens say.
/// Discovery, JWKS, introspection and revocation are answered by OpenIddict itself.
/// </summary>
internal static class ConnectEndpoints
{
    private const string ServerScheme = OpenIddictServerAspNetCoreDefaults.AuthenticationScheme;

    public static IEndpointRouteBuilder MapConnect(this IEndpointRouteBuilder app)
    {
        app.MapMethods("/connect/authorize", [HttpMethods.Get, HttpMethods.Post], Authorize).ExcludeFromDescription();
        app.MapPost("/connect/token", Token).ExcludeFromDescription();
        app.MapMethods("/connect/userinfo", [HttpMethods.Get, HttpMethods.Post], UserInfo).ExcludeFromDescription();
        app.MapMethods("/connect/logout", [HttpMethods.Get, HttpMethods.Post], Logout).ExcludeFromDescription();
        app.MapGet("/api/me", Me).RequireMachiToken().WithTags("Trust")
            .WithSummary("Who the bearer token speaks for: subject, client, scopes and audiences.");
        return app;
    }

    private static async Task<IResult> Authorize(HttpContext http, UserManager<MachiUser> users, SignInManager<MachiUser> signIn)
    {
        var request = http.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("Not an OpenID Connect request.");
        var session = await http.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        var user = session.Succeeded ? await users.GetUserAsync(session.Principal) : null;
        if (user is null || !await signIn.CanSignInAsync(user) || await users.IsLockedOutAsync(user) || request.HasPromptValue(PromptValues.Login))
        {
            if (request.HasPromptValue(PromptValues.None))
            {
                return Refuse(Errors.LoginRequired, "The user is not signed in.");
            }

            // prompt=login asks for a fresh sign-in: drop it from the request the login page sends the user back to.
            var parameters = (http.Request.HasFormContentType ? http.Request.Form.ToList() : http.Request.Query.ToList())
                .Where(p => p.Key != Parameters.Prompt || user is null)
                .ToList();
            if (user is not null)
            {
                await signIn.SignOutAsync();
            }

            return Results.Challenge(
                new AuthenticationProperties { RedirectUri = http.Request.PathBase + http.Request.Path + QueryString.Create(parameters) },
                [IdentityConstants.ApplicationScheme]);
        }

        var identity = Identity(user, request.GetScopes());
        return Results.SignIn(new ClaimsPrincipal(identity), authenticationScheme: ServerScheme);
    }

    private static async Task<IResult> Token(
        HttpContext http, UserManager<MachiUser> users, SignInManager<MachiUser> signIn, IOpenIddictApplicationManager applications)
    {
        var request = http.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("Not an OpenID Connect request.");
        if (request.IsClientCredentialsGrantType())
        {
            // OpenIddict has authenticated the client and checked it may use every scope it asked for.
            var client = await applications.FindByClientIdAsync(request.ClientId!) ?? throw new InvalidOperationException("Unknown client.");
            var scopes = request.GetScopes();
            if (scopes.IsEmpty)
            {
                // No scope asked: every scope the client was registered with.
                scopes = [.. (await applications.GetPermissionsAsync(client))
                    .Where(p => p.StartsWith(Permissions.Prefixes.Scope, StringComparison.Ordinal))
                    .Select(p => p[Permissions.Prefixes.Scope.Length..])];
            }

            var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
            identity.SetClaim(Claims.Subject, request.ClientId);
            identity.SetClaim(Claims.Name, await applications.GetDisplayNameAsync(client));
            identity.SetScopes(scopes);
            identity.SetResources(TrustScopes.Audience);
            identity.SetDestinations(_ => [Destinations.AccessToken]);
            return Results.SignIn(new ClaimsPrincipal(identity), authenticationScheme: ServerScheme);
        }

        if (request.IsAuthorizationCodeGrantType() || request.IsRefreshTokenGrantType())
        {
            // The code or refresh token is valid; the account must still be allowed to sign in, and its claims are
            // read again so a role change or lockout takes effect at the next refresh.
            var granted = (await http.AuthenticateAsync(ServerScheme)).Principal;
            var user = granted?.GetClaim(Claims.Subject) is { } subject ? await users.FindByIdAsync(subject) : null;
            if (granted is null || user is null || !await signIn.CanSignInAsync(user) || await users.IsLockedOutAsync(user))
            {
                return Refuse(Errors.InvalidGrant, "The account can no longer sign in.");
            }

            var identity = Identity(user, granted.GetScopes());
            return Results.SignIn(new ClaimsPrincipal(identity), authenticationScheme: ServerScheme);
        }

        return Refuse(Errors.UnsupportedGrantType, "This grant type is not supported.");
    }

    private static async Task<IResult> UserInfo(HttpContext http, UserManager<MachiUser> users)
    {
        var principal = (await http.AuthenticateAsync(ServerScheme)).Principal;
        var user = principal?.GetClaim(Claims.Subject) is { } subject ? await users.FindByIdAsync(subject) : null;
        if (principal is null || user is null)
        {
            return Results.Challenge(
                new AuthenticationProperties(new Dictionary<string, string?>
                {
                    [OpenIddictServerAspNetCoreConstants.Properties.Error] = Errors.InvalidToken,
                    [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = "The token is not a user's.",
                }),
                [ServerScheme]);
        }

        var claims = new Dictionary<string, object>(StringComparer.Ordinal) { [Claims.Subject] = user.Id };
        if (principal.HasScope(Scopes.Email))
        {
            claims[Claims.Email] = user.Email!;
            claims[Claims.EmailVerified] = user.EmailConfirmed;
        }

        if (principal.HasScope(Scopes.Profile))
        {
            claims[Claims.Name] = user.UserName!;
            claims[Claims.Role] = user.Role;
        }

        return Results.Ok(claims);
    }

    private static async Task<IResult> Logout(SignInManager<MachiUser> signIn)
    {
        await signIn.SignOutAsync();

        // OpenIddict redirects to the client's registered post_logout_redirect_uri, or here when there is none.
        return Results.SignOut(new AuthenticationProperties { RedirectUri = "/account/login" }, [ServerScheme]);
    }

    private static Ok<MeResponse> Me(ClaimsPrincipal user) =>
        TypedResults.Ok(new MeResponse(
            user.GetClaim(Claims.Subject) ?? "",
            user.GetClaim(Claims.ClientId) ?? user.GetClaim(Claims.AuthorizedParty),
            user.GetClaim(Claims.Role),
            [.. user.GetScopes()],
            [.. user.GetAudiences()]));

    /// <summary>What a user's tokens carry: the subject always, e-mail and role only where the scopes allow.</summary>
    private static ClaimsIdentity Identity(MachiUser user, ImmutableArray<string> scopes)
    {
        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, user.Id)
            .SetClaim(Claims.Email, user.Email)
            .SetClaim(Claims.Name, user.UserName)
            .SetClaim(Claims.Role, user.Role);
        identity.SetScopes(scopes);
        identity.SetResources(TrustScopes.Audience);
        identity.SetDestinations(claim => claim.Type switch
        {
            Claims.Subject => [Destinations.AccessToken, Destinations.IdentityToken],
            Claims.Role => scopes.Contains(Scopes.Profile)
                ? [Destinations.AccessToken, Destinations.IdentityToken]
                : [Destinations.AccessToken],
            Claims.Name when scopes.Contains(Scopes.Profile) => [Destinations.AccessToken, Destinations.IdentityToken],
            Claims.Email when scopes.Contains(Scopes.Email) => [Destinations.AccessToken, Destinations.IdentityToken],
            _ => [],
        });
        return identity;
    }

    private static IResult Refuse(string error, string description) =>
        Results.Forbid(
            new AuthenticationProperties(new Dictionary<string, string?>
            {
                [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
                [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
            }),
            [ServerScheme]);
}

/// <summary>The answer of <c>GET /api/me</c>.</summary>
internal sealed record MeResponse(string Subject, string? ClientId, string? Role, IReadOnlyList<string> Scopes, IReadOnlyList<string> Audiences);
