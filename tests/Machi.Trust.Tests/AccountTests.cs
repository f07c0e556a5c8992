using System.Net;
using System.Text.RegularExpressions;
using Machi.Trust.Tests.Infrastructure;
using OtpNet;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>The account pages as a resident uses them on a phone: sign-up, mail, reset, lockout, TOTP, language.</summary>
public sealed partial class AccountTests
{
    private const string Password = "tsurugajo-1384";

    private static Dictionary<string, string> Login(string email, string password) => new() { ["email"] = email, ["password"] = password };

    private static string[] Outbox(MachiServer server)
    {
        var folder = Path.Combine(server.DataDirectory, "mail-outbox");
        return Directory.Exists(folder) ? Directory.GetFiles(folder, "*.eml").Order(StringComparer.Ordinal).ToArray() : [];
    }

    private static string LinkIn(string mailFile) =>
        LinkPattern().Match(File.ReadAllText(mailFile)).Value is { Length: > 0 } link ? link : throw new InvalidOperationException(File.ReadAllText(mailFile));

    private static async Task SignUpAsync(MachiServer server, Browser browser, string email)
    {
        await browser.GetAsync("/account/signup");
        await browser.SubmitAsync("/account/signup", new Dictionary<string, string>
        {
            ["email"] = email, ["password"] = Password, ["password2"] = Password,
        });
        Assert.True(browser.Notice == "check_mail", browser.Html);
    }

    [Fact]
    public async Task A_resident_signs_up_gets_a_verification_mail_and_can_sign_in_only_after_opening_its_link()
    {
        await using var server = await MachiServer.StartAsync();
        using var browser = new Browser(server.BaseAddress);

        await SignUpAsync(server, browser, "hanako@example.jp");

        var mail = Assert.Single(Outbox(server));
        var text = File.ReadAllText(mail);
        Assert.Contains("To: hanako@example.jp", text, StringComparison.Ordinal);
        Assert.Contains("Content-Type: text/plain; charset=utf-8", text, StringComparison.Ordinal);
        Assert.Contains("メールアドレスを確認", text, StringComparison.Ordinal);

        await browser.GetAsync("/account/login");
        await browser.SubmitAsync("/account/login", Login("hanako@example.jp", Password));
        Assert.Equal("email_unconfirmed", browser.Error);

        await browser.GetAsync(LinkIn(mail));
        Assert.Equal(HttpStatusCode.OK, browser.Status);
        Assert.Equal("verified", browser.Notice);

        await browser.GetAsync("/account/login");
        await browser.SubmitAsync("/account/login", Login("hanako@example.jp", Password));
        Assert.Equal("/account", browser.Address!.AbsolutePath);
        Assert.Contains("data-role>resident<", browser.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tampered_verification_link_is_refused()
    {
        await using var server = await MachiServer.StartAsync();
        using var browser = new Browser(server.BaseAddress);
        await SignUpAsync(server, browser, "taro@example.jp");
        var link = LinkIn(Assert.Single(Outbox(server)));

        await browser.GetAsync(link[..^3] + "AAA");

        Assert.Equal(HttpStatusCode.BadRequest, browser.Status);
        Assert.Equal("invalid_link", browser.Error);
    }

    [Fact]
    public async Task A_forgotten_password_is_reset_through_the_mailed_link()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "producer", "farm@kitakata.example", Password);
        using var browser = new Browser(server.BaseAddress);

        await browser.GetAsync("/account/forgot-password?lang=en");
        await browser.SubmitAsync("/account/forgot-password", new Dictionary<string, string> { ["email"] = "farm@kitakata.example" });
        Assert.Equal("reset_sent", browser.Notice);
        await browser.GetAsync("/account/forgot-password");
        await browser.SubmitAsync("/account/forgot-password", new Dictionary<string, string> { ["email"] = "nobody@kitakata.example" });
        Assert.Equal("reset_sent", browser.Notice);
        var mail = Assert.Single(Outbox(server));
        Assert.Contains("reset your password", File.ReadAllText(mail), StringComparison.Ordinal);

        await browser.GetAsync(LinkIn(mail));
        await browser.SubmitAsync("/account/reset-password", new Dictionary<string, string>
        {
            ["password"] = "new-password-2027", ["password2"] = "new-password-2027",
        });
        Assert.True(browser.Notice == "password_changed", browser.Html);

        await browser.GetAsync("/account/login");
        await browser.SubmitAsync("/account/login", Login("farm@kitakata.example", Password));
        Assert.Equal("invalid_credentials", browser.Error);
        await browser.SubmitAsync("/account/login", Login("farm@kitakata.example", "new-password-2027"));
        Assert.Equal("/account", browser.Address!.AbsolutePath);
    }

    [Fact]
    public async Task Five_wrong_passwords_lock_the_account_even_against_the_right_one()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "staff", "bousai@city.aizu.example", Password);
        using var browser = new Browser(server.BaseAddress);
        await browser.GetAsync("/account/login");

        for (var i = 0; i < 4; i++)
        {
            await browser.SubmitAsync("/account/login", Login("bousai@city.aizu.example", "guess-" + i));
            Assert.Equal("invalid_credentials", browser.Error);
        }

        await browser.SubmitAsync("/account/login", Login("bousai@city.aizu.example", "guess-5"));
        Assert.Equal("locked_out", browser.Error);
        await browser.SubmitAsync("/account/login", Login("bousai@city.aizu.example", Password));
        Assert.Equal("locked_out", browser.Error);
        Assert.Equal(HttpStatusCode.BadRequest, browser.Status);
    }

    [Fact]
    public async Task A_user_enrols_TOTP_and_then_signs_in_with_password_and_code()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "clinician", "dr.ito@aizu-hospital.example", Password);
        using var browser = new Browser(server.BaseAddress);
        await browser.GetAsync("/account/login?ReturnUrl=%2Faccount%2Ftotp%2Fsetup");
        await browser.SubmitAsync("/account/login", Login("dr.ito@aizu-hospital.example", Password));
        Assert.Equal("/account/totp/setup", browser.Address!.AbsolutePath);
        var key = KeyPattern().Match(browser.Html).Groups[1].Value;
        var totp = new Totp(Base32Encoding.ToBytes(key));

        await browser.SubmitAsync("/account/totp/setup", new Dictionary<string, string> { ["code"] = "000000" == totp.ComputeTotp() ? "111111" : "000000" });
        Assert.Equal("invalid_code", browser.Error);
        await browser.SubmitAsync("/account/totp/setup", new Dictionary<string, string> { ["code"] = totp.ComputeTotp() });
        Assert.Equal("totp_enabled", browser.Notice);

        using var phone = new Browser(server.BaseAddress);
        await phone.GetAsync("/account/login");
        await phone.SubmitAsync("/account/login", Login("dr.ito@aizu-hospital.example", Password));
        Assert.Equal("/account/totp", phone.Address!.AbsolutePath);
        await phone.SubmitAsync("/account/totp", new Dictionary<string, string> { ["code"] = "000000" == totp.ComputeTotp() ? "111111" : "000000" });
        Assert.Equal("invalid_code", phone.Error);
        await phone.SubmitAsync("/account/totp", new Dictionary<string, string> { ["code"] = totp.ComputeTotp() });
        Assert.Equal("/account", phone.Address!.AbsolutePath);
        Assert.Contains("data-notice=\"totp_enabled\"", phone.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pages_are_Japanese_by_default_and_English_when_asked_remembered_in_a_cookie()
    {
        await using var server = await MachiServer.StartAsync();
        using var browser = new Browser(server.BaseAddress);

        await browser.GetAsync("/account/login");
        Assert.Contains("<html lang=\"ja\">", browser.Html, StringComparison.Ordinal);
        Assert.Contains("ログイン", browser.Html, StringComparison.Ordinal);
        Assert.Contains("name=\"viewport\"", browser.Html, StringComparison.Ordinal);
        Assert.Contains("<label for=\"email\">メールアドレス</label>", browser.Html, StringComparison.Ordinal);

        await browser.GetAsync("/account/login?lang=en");
        Assert.Contains("<html lang=\"en\">", browser.Html, StringComparison.Ordinal);
        await browser.GetAsync("/account/signup");
        Assert.Contains("<html lang=\"en\">", browser.Html, StringComparison.Ordinal);
        Assert.Contains("Sign up", browser.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_form_posted_without_its_antiforgery_token_is_refused()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "staff", "kikaku@city.aizu.example", Password);

        using var response = await server.Client.PostAsync(new Uri("account/login", UriKind.Relative),
            new FormUrlEncodedContent(Login("kikaku@city.aizu.example", Password)));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("data-error=\"form_expired\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(response.Headers.TryGetValues("Set-Cookie", out var cookies) ? cookies : [], c => c.StartsWith("machi.session", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_login_page_never_redirects_off_site()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "staff", "koho@city.aizu.example", Password);
        using var browser = new Browser(server.BaseAddress);

        await browser.GetAsync("/account/login?ReturnUrl=https%3A%2F%2Fevil.example%2F");
        await browser.SubmitAsync("/account/login", Login("koho@city.aizu.example", Password));

        Assert.Null(browser.LeftTo);
        Assert.Equal("/account", browser.Address!.AbsolutePath);
    }

    [GeneratedRegex(@"https?://\S+")]
    private static partial Regex LinkPattern();

    [GeneratedRegex("data-key=\"([A-Z2-7]+)\"")]
    private static partial Regex KeyPattern();
}
