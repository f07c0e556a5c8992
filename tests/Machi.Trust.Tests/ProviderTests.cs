using System.Net;
using System.Text.Json;
using Machi.Trust.Tests.Infrastructure;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>Discovery, JWKS, client credentials, introspection and the CLI, over real HTTP.</summary>
public sealed class ProviderTests
{
    [Fact]
    public async Task Discovery_names_the_request_issuer_every_endpoint_and_S256_only()
    {
        await using var server = await MachiServer.StartAsync();

        var doc = Json(await server.Client.GetStringAsync(new Uri(".well-known/openid-configuration", UriKind.Relative)));

        Assert.Equal(server.BaseAddress.AbsoluteUri, doc.GetProperty("issuer").GetString());
        foreach (var (name, path) in new[]
                 {
                     ("authorization_endpoint", "connect/authorize"), ("token_endpoint", "connect/token"),
                     ("introspection_endpoint", "connect/introspect"), ("revocation_endpoint", "connect/revoke"),
                     ("userinfo_endpoint", "connect/userinfo"), ("end_session_endpoint", "connect/logout"),
                     ("jwks_uri", ".well-known/jwks"),
                 })
        {
            Assert.Equal(new Uri(server.BaseAddress, path).AbsoluteUri, doc.GetProperty(name).GetString());
        }

        Assert.Equal(["S256"], doc.GetProperty("code_challenge_methods_supported").EnumerateArray().Select(e => e.GetString()));
        var scopes = doc.GetProperty("scopes_supported").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.All(TrustScopes.Names, s => Assert.Contains(s, scopes));
    }

    [Fact]
    public async Task The_signing_key_is_generated_once_persisted_and_published_in_the_JWKS_across_restarts()
    {
        var data = TempDirectory.Create("machi-trust-");
        try
        {
            string kid;
            await using (var first = await MachiServer.StartAsync(data))
            {
                var jwks = Json(await first.Client.GetStringAsync(new Uri(".well-known/jwks", UriKind.Relative)));
                var key = Assert.Single(jwks.GetProperty("keys").EnumerateArray());
                Assert.Equal("RSA", key.GetProperty("kty").GetString());
                Assert.Equal("sig", key.GetProperty("use").GetString());
                Assert.False(key.TryGetProperty("d", out _), "the private key must never be published");
                kid = key.GetProperty("kid").GetString()!;
            }

            await using var second = await MachiServer.StartAsync(data);
            var again = Json(await second.Client.GetStringAsync(new Uri(".well-known/jwks", UriKind.Relative)));
            Assert.Equal(kid, Assert.Single(again.GetProperty("keys").EnumerateArray()).GetProperty("kid").GetString());
            var id = await AddClientAsync(data, "--name", "Meter gateway", "--scope", "ngsi:write");
            var token = await ClientCredentialsTokenAsync(second.Client, id.Id, id.Secret!);
            Assert.Contains(kid, System.Text.Encoding.UTF8.GetString(Microsoft.AspNetCore.WebUtilities.WebEncoders.Base64UrlDecode(token.Split('.')[0])), StringComparison.Ordinal);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task Client_add_with_the_server_stopped_then_client_credentials_give_a_JWT_with_audience_and_scopes()
    {
        var data = TempDirectory.Create("machi-trust-");
        try
        {
            var (id, secret) = await AddClientAsync(data, "--name", "Snowplow tracker", "--scope", "ngsi:read", "--scope", "ngsi:write");
            await using var server = await MachiServer.StartAsync(data);

            var token = await ClientCredentialsTokenAsync(server.Client, id, secret!);

            var payload = Payload(token);
            Assert.Equal(server.BaseAddress.AbsoluteUri, payload["iss"]!.GetValue<string>());
            Assert.Equal("machi", payload["aud"]!.GetValue<string>());
            Assert.Equal("ngsi:read ngsi:write", payload["scope"]!.GetValue<string>());
            Assert.Equal(id, payload["sub"]!.GetValue<string>());
            var (status, body) = await GetWithTokenAsync(server.Client, "api/me", token);
            Assert.Equal(200, status);
            var me = Json(body);
            Assert.Equal(id, me.GetProperty("subject").GetString());
            Assert.Equal(["ngsi:read", "ngsi:write"], me.GetProperty("scopes").EnumerateArray().Select(e => e.GetString()).Order());
            Assert.Equal(["machi"], me.GetProperty("audiences").EnumerateArray().Select(e => e.GetString()));
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task A_client_gets_only_scopes_it_was_registered_with_and_a_wrong_secret_is_refused()
    {
        await using var server = await MachiServer.StartAsync();
        var (id, secret) = await AddClientAsync(server.DataDirectory, "--name", "Reader", "--scope", "ngsi:read");

        var (status, body) = await PostAsync(server.Client, "connect/token", new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = id, ["client_secret"] = secret!, ["scope"] = "ngsi:admin",
        });
        Assert.Equal(400, status);
        Assert.Equal("invalid_request", body["error"]!.GetValue<string>());
        Assert.Contains("scope", body["error_description"]!.GetValue<string>(), StringComparison.Ordinal);

        (status, body) = await PostAsync(server.Client, "connect/token", new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = id, ["client_secret"] = secret + "x",
        });
        Assert.Equal(401, status);
        Assert.Equal("invalid_client", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_admin_client_holds_every_scope()
    {
        await using var server = await MachiServer.StartAsync();
        var (id, secret) = await AddClientAsync(server.DataDirectory, "--name", "Kitakata city OS", "--admin");

        var token = await ClientCredentialsTokenAsync(server.Client, id, secret!);

        var scopes = Payload(token)["scope"]!.GetValue<string>().Split(' ');
        Assert.Contains("ngsi:admin", scopes);
        Assert.Contains("ngsi:read", scopes);
        Assert.Contains("ngsi:write", scopes);
    }

    [Fact]
    public async Task Introspection_reports_an_active_token_with_its_client_and_audience_and_an_unknown_one_as_inactive()
    {
        await using var server = await MachiServer.StartAsync();
        var (id, secret) = await AddClientAsync(server.DataDirectory, "--name", "Resource server", "--scope", "ngsi:read");
        var token = await ClientCredentialsTokenAsync(server.Client, id, secret!);

        var (status, body) = await PostAsync(server.Client, "connect/introspect", new Dictionary<string, string>
        {
            ["client_id"] = id, ["client_secret"] = secret!, ["token"] = token,
        });
        Assert.Equal(200, status);
        Assert.True(body["active"]!.GetValue<bool>());
        Assert.Equal(id, body["client_id"]!.GetValue<string>());
        Assert.Equal("machi", body["aud"]!.GetValue<string>());
        Assert.Equal("access_token", body["token_usage"]!.GetValue<string>());

        (status, body) = await PostAsync(server.Client, "connect/introspect", new Dictionary<string, string>
        {
            ["client_id"] = id, ["client_secret"] = secret!, ["token"] = "not-a-token",
        });
        Assert.Equal(200, status);
        Assert.False(body["active"]!.GetValue<bool>());
    }

    [Fact]
    public async Task User_add_prints_the_subject_id_and_refuses_an_unknown_role_or_a_short_password()
    {
        var data = TempDirectory.Create("machi-trust-");
        try
        {
            var subject = await AddUserAsync(data, "clinician", "dr.sato@aizu.example", "a-long-password");
            Assert.True(Guid.TryParse(subject, out _), subject);

            using var output = new StringWriter();
            using var errors = new StringWriter();
            Assert.Equal(1, await Machi.Host.Cli.MachiCli.RunAsync(
                ["user", "add", "--role", "mayor", "--email", "m@aizu.example", "--password", "a-long-password", "--data", data], output, errors));
            Assert.Contains("unknown role 'mayor'", errors.ToString(), StringComparison.Ordinal);
            Assert.Equal(1, await Machi.Host.Cli.MachiCli.RunAsync(
                ["user", "add", "--role", "staff", "--email", "s@aizu.example", "--password", "short", "--data", data], output, errors));
            Assert.Equal(2, await Machi.Host.Cli.MachiCli.RunAsync(["client", "add", "--data", data], output, errors));
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task Token_writes_wait_for_the_broker_writer_on_the_shared_database_instead_of_failing()
    {
        await using var server = await MachiServer.StartAsync();
        var (id, secret) = await AddClientAsync(server.DataDirectory, "--name", "Busy gateway", "--scope", "ngsi:write");

        var entities = Enumerable.Range(0, 40).Select(async i =>
        {
            using var content = new StringContent(
                $$$"""{"id":"urn:ngsi-ld:Vehicle:plow-{{{i}}}","type":"Vehicle","speed":{"type":"Property","value":{{{i}}}}}""",
                System.Text.Encoding.UTF8, "application/json");
            using var response = await server.Client.PostAsync(new Uri("ngsi-ld/v1/entities", UriKind.Relative), content);
            return (int)response.StatusCode;
        });
        var tokens = Enumerable.Range(0, 20).Select(async _ =>
        {
            await ClientCredentialsTokenAsync(server.Client, id, secret!);
            return 201;
        });

        var statuses = await Task.WhenAll(entities.Concat(tokens));

        Assert.All(statuses, s => Assert.Equal(201, s));
    }

    [Fact]
    public async Task Broker_endpoints_still_need_no_token()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Client.GetAsync(new Uri("ngsi-ld/v1/types", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
