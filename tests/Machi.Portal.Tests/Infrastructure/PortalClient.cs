using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Machi.Host.Cli;

namespace Machi.Portal.Tests.Infrastructure;

/// <summary>
/// A person using the portal over plain HTTP: keeps cookies, reads antiforgery tokens from pages and posts forms
/// (URL-encoded or multipart with files), without following redirects so tests see them.
/// </summary>
public sealed partial class PortalClient : IDisposable
{
    public const string Password = "correct horse battery";
    private readonly HttpClient _http;

    public PortalClient(Uri baseAddress)
    {
        _http = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false, UseCookies = true })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public static async Task AddUserAsync(string data, string role, string email)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await MachiCli.RunAsync(["user", "add", "--role", role, "--email", email, "--password", Password, "--data", data], output, errors);
        Assert.True(code == 0, $"machi user add exited {code}: {errors}");
    }

    public async Task<(HttpStatusCode Status, string Html, Uri? Location)> GetAsync(string path)
    {
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Location);
    }

    public async Task<(HttpStatusCode Status, string Html, Uri? Location)> PostFormAsync(string pagePath, string action, IEnumerable<KeyValuePair<string, string>> fields)
    {
        var token = await TokenAsync(pagePath);
        using var content = new FormUrlEncodedContent(fields.Append(new("__RequestVerificationToken", token)));
        using var response = await _http.PostAsync(new Uri(action, UriKind.Relative), content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Location);
    }

    public async Task<(HttpStatusCode Status, string Html, Uri? Location)> PostWithoutTokenAsync(string action, IEnumerable<KeyValuePair<string, string>> fields)
    {
        using var content = new FormUrlEncodedContent(fields);
        using var response = await _http.PostAsync(new Uri(action, UriKind.Relative), content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Location);
    }

    public async Task<(HttpStatusCode Status, string Html, Uri? Location)> PostMultipartAsync(
        string pagePath, string action, IEnumerable<KeyValuePair<string, string>> fields, IEnumerable<(string Field, string FileName, string Type, byte[] Bytes)> files)
    {
        var token = await TokenAsync(pagePath);
        using var content = new MultipartFormDataContent();
        content.Add(new StringContent(token), "__RequestVerificationToken");
        foreach (var (name, value) in fields)
        {
            content.Add(new StringContent(value), name);
        }

        foreach (var (field, fileName, type, bytes) in files)
        {
            var part = new ByteArrayContent(bytes);
            part.Headers.ContentType = new MediaTypeHeaderValue(type);
            content.Add(part, field, fileName);
        }

        using var response = await _http.PostAsync(new Uri(action, UriKind.Relative), content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Location);
    }

    public async Task SignInAsync(string email)
    {
        var (status, html, location) = await PostFormAsync("/account/login", "/account/login",
            [new("email", email), new("password", Password), new("ReturnUrl", "/")]);
        Assert.True(status == HttpStatusCode.Redirect && location?.OriginalString == "/", $"sign-in failed: {status}\n{html}");
    }

    private async Task<string> TokenAsync(string pagePath)
    {
        var (status, html, _) = await GetAsync(pagePath);
        Assert.True(status == HttpStatusCode.OK || (int)status == 400, $"GET {pagePath}: {status}");
        var match = TokenPattern().Match(html);
        Assert.True(match.Success, $"no antiforgery token on {pagePath}:\n{html}");
        return WebUtility.HtmlDecode(match.Groups[1].Value);
    }

    public void Dispose() => _http.Dispose();

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenPattern();
}
