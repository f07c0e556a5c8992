using Machi.Ngsi.Errors;
using Machi.Trust.Connect;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Broker.Access;

/// <summary>The scope an endpoint needs (null: none; what the caller then sees is still filtered per entity).</summary>
internal sealed record RequiredScope(string? Scope);

/// <summary>Finds out who is calling the broker, once per request, from the bearer token and the declared purpose.</summary>
internal static class Callers
{
    /// <summary>The purpose a service declares for its access (consent is per purpose).</summary>
    public const string PurposeHeader = "Machi-Purpose";

    /// <summary>A staff member's emergency reason (break-glass); logged and shown to the residents concerned.</summary>
    public const string EmergencyHeader = "Machi-Emergency-Reason";

    private static readonly object Key = new();

    /// <summary>Reads of the API need no scope, changes need <c>ngsi:write</c>, unless the endpoint says otherwise.</summary>
    public static string? ScopeFor(HttpContext http) =>
        http.GetEndpoint()?.Metadata.GetMetadata<RequiredScope>() is { } required
            ? required.Scope
            : HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method) ? null : Access.Caller.WriteScope;

    /// <summary>Resolves the caller and checks the endpoint's scope: 401 without (valid) credentials, 403 without the scope.</summary>
    public static async ValueTask<Caller> AuthorizeAsync(HttpContext http)
    {
        var caller = await ResolveAsync(http).ConfigureAwait(false);
        if (ScopeFor(http) is { } scope && !caller.Has(scope))
        {
            throw caller.IsAnonymous
                ? new NgsiException(NgsiErrorType.Unauthorized, $"This operation needs an access token with the scope '{scope}'.")
                : new NgsiException(NgsiErrorType.Forbidden, $"The access token lacks the scope '{scope}' this operation needs.");
        }

        return caller;
    }

    public static Caller Caller(this HttpContext http) => http.Items[Key] as Caller ?? Access.Caller.Anonymous;

    private static async ValueTask<Caller> ResolveAsync(HttpContext http)
    {
        var (state, identity) = await http.RequestServices.GetRequiredService<AccessTokens>().AuthenticateAsync(http).ConfigureAwait(false);
        var caller = state switch
        {
            TokenState.Valid => From(identity!) with
            {
                Purpose = Header(http, PurposeHeader, 128),
                EmergencyReason = Header(http, EmergencyHeader, 500),
            },
            TokenState.None => Access.Caller.Anonymous,
            _ => throw new NgsiException(NgsiErrorType.Unauthorized, "The access token is not valid (expired, revoked, or not issued by this city)."),
        };
        http.Items[Key] = caller;
        return caller;
    }

    /// <summary>The caller a valid access token speaks for (before any declared purpose).</summary>
    public static Caller From(TokenIdentity identity) => new(identity.Subject, identity.ClientId, identity.Scopes, identity.Roles);

    private static string? Header(HttpContext http, string name, int maxLength)
    {
        var value = http.Request.Headers[name].ToString().Trim();
        if (value.Length == 0)
        {
            return null;
        }

        if (value.Length > maxLength || value.Any(char.IsControl))
        {
            throw NgsiException.BadData($"{name} must be at most {maxLength} characters of text.");
        }

        return value;
    }

    /// <summary>States the scope this endpoint needs (null: none).</summary>
    public static TBuilder RequiresScope<TBuilder>(this TBuilder builder, string? scope)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new RequiredScope(scope));
}
