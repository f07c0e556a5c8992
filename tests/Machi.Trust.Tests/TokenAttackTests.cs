using System.Security.Cryptography;
using System.Text;
using Machi.Trust.Tests.Infrastructure;
using Microsoft.AspNetCore.WebUtilities;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>What a protected endpoint must refuse with 401: tokens that are missing, expired, forged or unsigned.</summary>
public sealed class TokenAttackTests
{
    private static async Task<(MachiServer Server, string Token)> StartWithTokenAsync(IDictionary<string, string?>? settings = null)
    {
        var server = await MachiServer.StartAsync(settings: settings);
        var (id, secret) = await AddClientAsync(server.DataDirectory, "--name", "Water meters", "--scope", "ngsi:write");
        return (server, await ClientCredentialsTokenAsync(server.Client, id, secret!));
    }

    [Fact]
    public async Task No_token_is_401_with_a_bearer_challenge()
    {
        await using var server = await MachiServer.StartAsync();

        using var response = await server.Anonymous.GetAsync(new Uri("api/me", UriKind.Relative));

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_token_is_401()
    {
        var (server, token) = await StartWithTokenAsync(new Dictionary<string, string?> { ["Trust:AccessTokenLifetime"] = "00:00:02" });
        await using var owned = server;
        Assert.Equal(200, (await GetWithTokenAsync(server.Client, "api/me", token)).Status);

        await Task.Delay(TimeSpan.FromSeconds(3));

        Assert.Equal(401, (await GetWithTokenAsync(server.Client, "api/me", token)).Status);
    }

    [Fact]
    public async Task A_token_signed_with_another_key_is_401()
    {
        var (server, token) = await StartWithTokenAsync();
        await using var owned = server;
        var parts = token.Split('.');
        using var other = RSA.Create(2048);
        var signature = other.SignData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

        var forged = $"{parts[0]}.{parts[1]}.{WebEncoders.Base64UrlEncode(signature)}";

        Assert.Equal(401, (await GetWithTokenAsync(server.Client, "api/me", forged)).Status);
    }

    [Fact]
    public async Task An_unsigned_alg_none_token_is_401()
    {
        var (server, token) = await StartWithTokenAsync();
        await using var owned = server;
        var header = WebEncoders.Base64UrlEncode("""{"alg":"none","typ":"at+jwt"}"""u8.ToArray());

        var unsigned = $"{header}.{token.Split('.')[1]}.";

        Assert.Equal(401, (await GetWithTokenAsync(server.Client, "api/me", unsigned)).Status);
    }

    [Fact]
    public async Task A_token_whose_claims_were_changed_is_401()
    {
        var (server, token) = await StartWithTokenAsync();
        await using var owned = server;
        var parts = token.Split('.');
        var payload = Payload(token);
        payload["scope"] = "ngsi:admin";

        var tampered = $"{parts[0]}.{WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes(payload.ToJsonString()))}.{parts[2]}";

        Assert.Equal(401, (await GetWithTokenAsync(server.Client, "api/me", tampered)).Status);
    }
}
