using System.Net;
using System.Text.RegularExpressions;

namespace Machi.Trust.Tests.Infrastructure;

/// <summary>
/// What a person's browser does with the account pages: keeps cookies, follows redirects on the server, reads a form
/// (with its antiforgery token) and posts it back. Redirects leaving the server are returned, not followed.
/// </summary>
public sealed partial class Browser : IDisposable
{
    private readonly HttpClient _http;

    public Browser(Uri baseAddress)
    {
        Cookies = new CookieContainer();
        _http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false, UseCookies = true })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    public CookieContainer Cookies { get; }

    /// <summary>The last page's address and HTML.</summary>
    public Uri? Address { get; private set; }

    public string Html { get; private set; } = "";

    public HttpStatusCode Status { get; private set; }

    /// <summary>Set when a redirect pointed outside the server (e.g. back to a client's redirect_uri).</summary>
    public Uri? LeftTo { get; private set; }

    public Task GetAsync(string url) => SendAsync(new HttpRequestMessage(HttpMethod.Get, url));

    /// <summary>Posts the form whose action is <paramref name="action"/> on the current page, with its hidden fields.</summary>
    public Task SubmitAsync(string action, IDictionary<string, string> fields)
    {
        var form = FormPattern().Matches(Html).FirstOrDefault(m => WebUtility.HtmlDecode(m.Groups["action"].Value) == action)
            ?? throw new InvalidOperationException($"No form posting to {action} on {Address}:\n{Html}");
        var values = HiddenPattern().Matches(form.Value)
            .ToDictionary(m => WebUtility.HtmlDecode(m.Groups["name"].Value), m => WebUtility.HtmlDecode(m.Groups["value"].Value));
        foreach (var (name, value) in fields)
        {
            values[name] = value;
        }

        return SendAsync(new HttpRequestMessage(HttpMethod.Post, action) { Content = new FormUrlEncodedContent(values) });
    }

    /// <summary>The <c>data-error</c> code shown on the page, if any.</summary>
    public string? Error => ErrorPattern().Match(Html) is { Success: true } m ? m.Groups[1].Value : null;

    public string? Notice => NoticePattern().Match(Html) is { Success: true } m ? m.Groups[1].Value : null;

    private async Task SendAsync(HttpRequestMessage request)
    {
        LeftTo = null;
        for (var hops = 0; hops < 10; hops++)
        {
            using var response = await _http.SendAsync(request);
            var target = new Uri(_http.BaseAddress!, request.RequestUri!);
            if (response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.Found or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect)
            {
                var next = new Uri(target, response.Headers.Location!);
                if (next.Authority != _http.BaseAddress!.Authority)
                {
                    LeftTo = next;
                    Address = target;
                    Status = response.StatusCode;
                    Html = "";
                    return;
                }

                request = new HttpRequestMessage(HttpMethod.Get, next);
                continue;
            }

            Address = target;
            Status = response.StatusCode;
            Html = await response.Content.ReadAsStringAsync();
            return;
        }

        throw new InvalidOperationException("Too many redirects.");
    }

    public void Dispose() => _http.Dispose();

    [GeneratedRegex("<form method=\"post\" action=\"(?<action>[^\"]*)\">.*?</form>", RegexOptions.Singleline)]
    private static partial Regex FormPattern();

    [GeneratedRegex("<input type=\"hidden\" name=\"(?<name>[^\"]*)\" value=\"(?<value>[^\"]*)\">")]
    private static partial Regex HiddenPattern();

    [GeneratedRegex("data-error=\"([^\"]+)\"")]
    private static partial Regex ErrorPattern();

    [GeneratedRegex("data-notice=\"([^\"]+)\"")]
    private static partial Regex NoticePattern();
}
