using System.Text.Json.Nodes;
using Machi.Trust.Tests.Infrastructure;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>Authorization code + PKCE, refresh, revocation, userinfo and logout, driven like a browser and an app.</summary>
public sealed class AuthorizationCodeTests
{
    private const string Password = "yukimichi-2026";

    private static async Task<(MachiServer Server, string ClientId, string Secret, string Subject)> StartAsync(string email = "staff@city.aizu.example")
    {
        var server = await MachiServer.StartAsync();
        var subject = await AddUserAsync(server.DataDirectory, "staff", email, Password);
        var (id, secret) = await AddClientAsync(server.DataDirectory,
            "--name", "Citizen portal", "--scope", "openid profile email offline_access ngsi:read", "--redirect-uri", RedirectUri.AbsoluteUri);
        return (server, id, secret!, subject);
    }

    [Fact]
    public async Task A_staff_member_signs_in_through_the_login_page_and_the_portal_gets_tokens_for_them()
    {
        var (server, clientId, secret, subject) = await StartAsync();
        await using var owned = server;

        var tokens = await SignInAsync(server, clientId, secret, "staff@city.aizu.example", Password);

        var access = Payload(tokens["access_token"]!.GetValue<string>());
        Assert.Equal(subject, access["sub"]!.GetValue<string>());
        Assert.Equal("machi", access["aud"]!.GetValue<string>());
        Assert.Contains("ngsi:read", access["scope"]!.GetValue<string>().Split(' '));
        Assert.Equal("staff", access["role"]!.GetValue<string>());
        var id = Payload(tokens["id_token"]!.GetValue<string>());
        Assert.Equal(subject, id["sub"]!.GetValue<string>());
        Assert.Equal(clientId, id["aud"]!.GetValue<string>());
        Assert.Equal("staff@city.aizu.example", id["email"]!.GetValue<string>());
        Assert.NotNull(tokens["refresh_token"]);

        var (status, me) = await GetWithTokenAsync(server.Client, "api/me", tokens["access_token"]!.GetValue<string>());
        Assert.Equal(200, status);
        Assert.Equal("staff", Json(me).GetProperty("role").GetString());
        (status, var info) = await GetWithTokenAsync(server.Client, "connect/userinfo", tokens["access_token"]!.GetValue<string>());
        Assert.Equal(200, status);
        Assert.Equal("staff@city.aizu.example", Json(info).GetProperty("email").GetString());
    }

    [Fact]
    public async Task A_code_is_refused_with_the_wrong_PKCE_verifier_and_is_spent_once_redeemed()
    {
        var (server, clientId, secret, _) = await StartAsync();
        await using var owned = server;
        using var browser = new Browser(server.BaseAddress);
        var (verifier, challenge) = Pkce();
        await browser.GetAsync(AuthorizeUrl(clientId, "openid ngsi:read", challenge));
        await browser.SubmitAsync("/account/login", new Dictionary<string, string> { ["email"] = "staff@city.aizu.example", ["password"] = Password });
        var code = CodeFrom(browser);

        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code", ["client_id"] = clientId, ["client_secret"] = secret, ["code"] = code,
            ["redirect_uri"] = RedirectUri.AbsoluteUri, ["code_verifier"] = Pkce().Verifier,
        };
        var (status, body) = await PostAsync(server.Client, "connect/token", form);
        Assert.Equal(400, status);
        Assert.Equal("invalid_grant", body["error"]!.GetValue<string>());

        form["code_verifier"] = verifier;
        (status, body) = await PostAsync(server.Client, "connect/token", form);
        Assert.True(status == 200, body.ToJsonString());

        (status, body) = await PostAsync(server.Client, "connect/token", form);
        Assert.Equal(400, status);
        Assert.Equal("invalid_grant", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_authorization_request_without_PKCE_is_refused()
    {
        var (server, clientId, _, _) = await StartAsync();
        await using var owned = server;
        using var browser = new Browser(server.BaseAddress);

        await browser.GetAsync($"/connect/authorize?response_type=code&client_id={clientId}&redirect_uri={Uri.EscapeDataString(RedirectUri.AbsoluteUri)}&scope=openid&state=s1");

        // Either back to the app with the error or, before the redirect URI is trusted, an error page: never a code.
        if (browser.LeftTo is { } back)
        {
            Assert.Contains("error=invalid_request", back.Query, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, browser.Status);
            Assert.Contains("invalid_request", browser.Html, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_refresh_token_gives_new_tokens_and_once_revoked_it_is_inactive_and_refused()
    {
        var (server, clientId, secret, subject) = await StartAsync();
        await using var owned = server;
        var tokens = await SignInAsync(server, clientId, secret, "staff@city.aizu.example", Password);
        var refresh = tokens["refresh_token"]!.GetValue<string>();

        var (status, renewed) = await PostAsync(server.Client, "connect/token", new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["client_id"] = clientId, ["client_secret"] = secret, ["refresh_token"] = refresh,
        });
        Assert.True(status == 200, renewed.ToJsonString());
        Assert.Equal(subject, Payload(renewed["access_token"]!.GetValue<string>())["sub"]!.GetValue<string>());
        var newRefresh = renewed["refresh_token"]!.GetValue<string>();

        (status, _) = await PostAsync(server.Client, "connect/revoke", new Dictionary<string, string>
        {
            ["client_id"] = clientId, ["client_secret"] = secret, ["token"] = newRefresh, ["token_type_hint"] = "refresh_token",
        });
        Assert.Equal(200, status);

        (status, var introspection) = await PostAsync(server.Client, "connect/introspect", new Dictionary<string, string>
        {
            ["client_id"] = clientId, ["client_secret"] = secret, ["token"] = newRefresh,
        });
        Assert.Equal(200, status);
        Assert.False(introspection["active"]!.GetValue<bool>());
        (status, var refused) = await PostAsync(server.Client, "connect/token", new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["client_id"] = clientId, ["client_secret"] = secret, ["refresh_token"] = newRefresh,
        });
        Assert.Equal(400, status);
        Assert.Equal("invalid_grant", refused["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_revoked_access_token_is_refused_by_the_API_and_inactive_at_introspection()
    {
        var (server, clientId, secret, _) = await StartAsync();
        await using var owned = server;
        var access = (await SignInAsync(server, clientId, secret, "staff@city.aizu.example", Password))["access_token"]!.GetValue<string>();
        Assert.Equal(200, (await GetWithTokenAsync(server.Client, "api/me", access)).Status);

        var (status, _) = await PostAsync(server.Client, "connect/revoke", new Dictionary<string, string>
        {
            ["client_id"] = clientId, ["client_secret"] = secret, ["token"] = access,
        });
        Assert.Equal(200, status);

        Assert.Equal(401, (await GetWithTokenAsync(server.Client, "api/me", access)).Status);
        (_, var introspection) = await PostAsync(server.Client, "connect/introspect", new Dictionary<string, string>
        {
            ["client_id"] = clientId, ["client_secret"] = secret, ["token"] = access,
        });
        Assert.False(introspection["active"]!.GetValue<bool>());
    }

    [Fact]
    public async Task A_public_app_signs_in_with_PKCE_and_no_secret()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "merchant", "shop@tsuruga.example", Password);
        var (clientId, secret) = await AddClientAsync(server.DataDirectory,
            "--name", "Aizu wallet app", "--public", "--scope", "openid offline_access", "--redirect-uri", RedirectUri.AbsoluteUri);
        Assert.Null(secret);

        var tokens = await SignInAsync(server, clientId, null, "shop@tsuruga.example", Password, "openid offline_access");

        Assert.Equal("merchant", Payload(tokens["access_token"]!.GetValue<string>())["role"]!.GetValue<string>());
    }

    [Fact]
    public async Task Logout_ends_the_session_so_the_next_authorization_asks_to_sign_in_again()
    {
        var (server, clientId, _, _) = await StartAsync();
        await using var owned = server;
        using var browser = new Browser(server.BaseAddress);
        await browser.GetAsync(AuthorizeUrl(clientId, "openid", Pkce().Challenge));
        await browser.SubmitAsync("/account/login", new Dictionary<string, string> { ["email"] = "staff@city.aizu.example", ["password"] = Password });
        Assert.NotNull(browser.LeftTo);

        // Signed in: a second authorization goes straight back to the app.
        await browser.GetAsync(AuthorizeUrl(clientId, "openid", Pkce().Challenge));
        Assert.NotNull(browser.LeftTo);

        await browser.GetAsync("/connect/logout");
        await browser.GetAsync(AuthorizeUrl(clientId, "openid", Pkce().Challenge));
        Assert.Null(browser.LeftTo);
        Assert.Equal("/account/login", browser.Address!.AbsolutePath);
    }

    [Fact]
    public async Task Prompt_none_without_a_session_returns_login_required_to_the_app()
    {
        var (server, clientId, _, _) = await StartAsync();
        await using var owned = server;
        using var browser = new Browser(server.BaseAddress);

        await browser.GetAsync(AuthorizeUrl(clientId, "openid", Pkce().Challenge) + "&prompt=none");

        Assert.Contains("error=login_required", browser.LeftTo?.Query ?? "", StringComparison.Ordinal);
    }
}
