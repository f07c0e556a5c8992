using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Host.Cli;
using Microsoft.AspNetCore.WebUtilities;

namespace Machi.Trust.Tests.Infrastructure;

/// <summary>What a client application does against Machi's OpenID Connect endpoints.</summary>
public static class Oidc
{
    public static readonly Uri RedirectUri = new("http://127.0.0.1:1/callback");

    /// <summary>Runs <c>machi …</c> in-process and returns its stdout (fails the test on a non-zero exit).</summary>
    public static async Task<string> MachiAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await MachiCli.RunAsync(args, output, errors);
        Assert.True(code == 0, $"machi {string.Join(' ', args)} exited {code}: {errors}");
        return output.ToString().Trim();
    }

    public static async Task<(string Id, string? Secret)> AddClientAsync(string data, params string[] options)
    {
        var json = JsonNode.Parse(await MachiAsync(["client", "add", "--data", data, .. options]))!;
        return (json["client_id"]!.GetValue<string>(), json["client_secret"]?.GetValue<string>());
    }

    /// <summary>As <see cref="AddClientAsync(string, string[])"/>, on the server's data (its PostgreSQL database too, when it has one).</summary>
    public static async Task<(string Id, string? Secret)> AddClientAsync(MachiServer server, params string[] options)
    {
        var json = JsonNode.Parse(await MachiAsync(["client", "add", .. Tokens.Location(server.DataDirectory, server.Database), .. options]))!;
        return (json["client_id"]!.GetValue<string>(), json["client_secret"]?.GetValue<string>());
    }

    /// <summary>As <see cref="AddUserAsync(string, string, string, string)"/>, on the server's data.</summary>
    public static async Task<string> AddUserAsync(MachiServer server, string role, string email, string password) =>
        await MachiAsync(["user", "add", "--role", role, "--email", email, "--password", password, .. Tokens.Location(server.DataDirectory, server.Database)]);

    public static async Task<string> AddUserAsync(string data, string role, string email, string password) =>
        await MachiAsync("user", "add", "--role", role, "--email", email, "--password", password, "--data", data);

    public static async Task<(int Status, JsonObject Body)> PostAsync(HttpClient http, string path, IDictionary<string, string> form)
    {
        using var response = await http.PostAsync(new Uri(path, UriKind.Relative), new FormUrlEncodedContent(form));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? [] : JsonNode.Parse(text)!.AsObject());
    }

    public static async Task<string> ClientCredentialsTokenAsync(HttpClient http, string clientId, string secret, string? scope = null)
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null)
        {
            form["scope"] = scope;
        }

        var (status, body) = await PostAsync(http, "connect/token", form);
        Assert.True(status == 200, body.ToJsonString());
        return body["access_token"]!.GetValue<string>();
    }

    /// <summary>Sends a request with a bearer token (none when null), a declared purpose (Machi-Purpose) and a JSON body, when given.</summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string? token, string? body = null, string? purpose = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (purpose is not null)
        {
            request.Headers.Add("Machi-Purpose", purpose);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        return await http.SendAsync(request);
    }

    public static async Task<(int Status, string Body)> GetWithTokenAsync(HttpClient http, string path, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public static (string Verifier, string Challenge) Pkce()
    {
        var verifier = WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));
        return (verifier, WebEncoders.Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
    }

    public static string AuthorizeUrl(string clientId, string scope, string challenge, string state = "s1") =>
        QueryHelpers.AddQueryString("/connect/authorize", new Dictionary<string, string?>
        {
            ["response_type"] = "code",
            ["client_id"] = clientId,
            ["redirect_uri"] = RedirectUri.AbsoluteUri,
            ["scope"] = scope,
            ["state"] = state,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        });

    /// <summary>
    /// The whole authorization code + PKCE flow as a browser and a client do it: authorize, sign in on the login
    /// page, come back with a code, exchange it. Returns the token response.
    /// </summary>
    public static Task<JsonObject> SignInAsync(
        MachiServer server, string clientId, string? secret, string email, string password, string scope = "openid profile email offline_access ngsi:read") =>
        SignInAsync(server.BaseAddress, server.Client, clientId, secret, email, password, scope);

    /// <summary>As <see cref="SignInAsync(MachiServer, string, string?, string, string, string)"/>, with any Machi at <paramref name="baseAddress"/> (<paramref name="http"/> exchanges the code).</summary>
    public static async Task<JsonObject> SignInAsync(
        Uri baseAddress, HttpClient http, string clientId, string? secret, string email, string password, string scope = "openid profile email offline_access ngsi:read")
    {
        using var browser = new Browser(baseAddress);
        var (verifier, challenge) = Pkce();
        await browser.GetAsync(AuthorizeUrl(clientId, scope, challenge));
        Assert.Equal("/account/login", browser.Address!.AbsolutePath);
        await browser.SubmitAsync("/account/login", new Dictionary<string, string> { ["email"] = email, ["password"] = password });
        var code = CodeFrom(browser);
        return await ExchangeAsync(http, clientId, secret, code, verifier);
    }

    /// <summary>Signs the resident in with a browser, opens the service's opt-in URL, checks it names <paramref name="serviceName"/> and agrees; the consent id.</summary>
    public static Task<string> ConsentOnThePageAsync(
        MachiServer server, string serviceId, string serviceName, string email, string password, string purpose, string categories) =>
        ConsentOnThePageAsync(server.BaseAddress, serviceId, serviceName, email, password, purpose, categories);

    /// <summary>As <see cref="ConsentOnThePageAsync(MachiServer, string, string, string, string, string, string)"/>, with any Machi at <paramref name="baseAddress"/>.</summary>
    public static async Task<string> ConsentOnThePageAsync(
        Uri baseAddress, string serviceId, string serviceName, string email, string password, string purpose, string categories)
    {
        using var browser = new Browser(baseAddress);
        await browser.GetAsync("/account/login");
        await browser.SubmitAsync("/account/login", new Dictionary<string, string> { ["email"] = email, ["password"] = password });
        await browser.GetAsync(QueryHelpers.AddQueryString("/consent", new Dictionary<string, string?>
        {
            ["client_id"] = serviceId, ["purpose"] = purpose, ["categories"] = categories, ["redirect_uri"] = RedirectUri.AbsoluteUri,
        }));
        Assert.Contains(serviceName, browser.Html, StringComparison.Ordinal);
        var agree = browser.Html.IndexOf("value=\"agree\"", StringComparison.Ordinal);
        Assert.True(agree > 0, browser.Html);
        await browser.SubmitAsync("/consent", new Dictionary<string, string> { ["decision"] = "agree" });
        Assert.NotNull(browser.LeftTo);
        var query = QueryHelpers.ParseQuery(browser.LeftTo!.Query);
        Assert.Equal("granted", query["consent"].ToString());
        return query["consent_id"].ToString();
    }

    public static string CodeFrom(Browser browser)
    {
        Assert.True(browser.LeftTo is not null, $"no redirect to the client; page {browser.Address} said {browser.Error}:\n{browser.Html}");
        Assert.StartsWith(RedirectUri.AbsoluteUri, browser.LeftTo!.AbsoluteUri, StringComparison.Ordinal);
        var query = QueryHelpers.ParseQuery(browser.LeftTo.Query);
        Assert.Equal("s1", query["state"].ToString());
        return query["code"].ToString();
    }

    public static async Task<JsonObject> ExchangeAsync(HttpClient http, string clientId, string? secret, string code, string verifier)
    {
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code", ["client_id"] = clientId, ["code"] = code,
            ["redirect_uri"] = RedirectUri.AbsoluteUri, ["code_verifier"] = verifier,
        };
        if (secret is not null)
        {
            form["client_secret"] = secret;
        }

        var (status, body) = await PostAsync(http, "connect/token", form);
        Assert.True(status == 200, body.ToJsonString());
        return body;
    }

    /// <summary>The JSON payload of a JWT (no validation).</summary>
    public static JsonObject Payload(string jwt) =>
        JsonNode.Parse(WebEncoders.Base64UrlDecode(jwt.Split('.')[1]))!.AsObject();

    public static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();
}

