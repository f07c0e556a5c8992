using System.Text;
using Machi.Trust.Accounts;
using Machi.Trust.Clients;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Machi.Trust.Pages;

/// <summary>Sign-in, sign-up, e-mail verification, password reset and TOTP pages, rendered on the server.</summary>
internal static class AccountPages
{
    public static IEndpointRouteBuilder MapAccountPages(this IEndpointRouteBuilder app)
    {
        var account = app.MapGroup("/account").ExcludeFromDescription();
        account.MapGet("", Home);
        account.MapGet("/login", LoginForm);
        account.MapPost("/login", Login);
        account.MapGet("/totp", TotpForm);
        account.MapPost("/totp", Totp);
        account.MapGet("/totp/setup", TotpSetupForm);
        account.MapPost("/totp/setup", TotpSetup);
        account.MapGet("/signup", SignupForm);
        account.MapPost("/signup", Signup);
        account.MapGet("/verify-email", VerifyEmail);
        account.MapGet("/forgot-password", ForgotForm);
        account.MapPost("/forgot-password", Forgot);
        account.MapGet("/reset-password", ResetForm);
        account.MapPost("/reset-password", Reset);
        account.MapPost("/logout", Logout);
        account.MapGet("/services", Services);
        account.MapPost("/services", RegisterService);
        return app;
    }

    private static async Task<IResult> Home(HttpContext http, IAntiforgery af, UserManager<MachiUser> users)
    {
        var html = Html.For(http, af);
        if (await users.GetUserAsync(http.User) is not { } user)
        {
            return Results.Redirect("/account/login?ReturnUrl=%2Faccount");
        }

        var body = $"<p>{Html.E(user.Email)}</p><p>{Html.E(html.T("role"))}: <span data-role>{Html.E(user.Role)}</span></p>"
            + (user.TwoFactorEnabled ? html.Notice("totp_enabled") : $"<nav>{html.Link("/account/totp/setup", "totp_setup_link")}</nav>")
            + html.Form("/account/logout", "logout_submit");
        return html.Page("account_title", body);
    }

    private static IResult LoginForm(HttpContext http, IAntiforgery af, string? returnUrl) =>
        LoginPage(Html.For(http, af), returnUrl, email: null, error: null);

    private static IResult LoginPage(Html html, string? returnUrl, string? email, string? error) =>
        html.Page("login_title",
            (error is null ? "" : html.Error(error))
            + html.Form("/account/login", "login_submit",
                html.Field("email", "email", "email", "username", email),
                html.Field("password", "password", "password", "current-password"),
                Html.Hidden("ReturnUrl", returnUrl))
            + $"<nav>{html.Link("/account/signup", "signup_link")}{html.Link("/account/forgot-password", "forgot_link")}</nav>",
            error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);

    private static async Task<IResult> Login(HttpContext http, IAntiforgery af, UserManager<MachiUser> users, SignInManager<MachiUser> signIn)
    {
        var html = Html.For(http, af);
        if (await ReadFormAsync(http, af) is not { } form)
        {
            return LoginPage(html, null, null, "form_expired");
        }

        var email = form["email"].ToString().Trim();
        var returnUrl = form["ReturnUrl"].ToString();
        var user = email.Length == 0 ? null : await users.FindByEmailAsync(email);
        if (user is null)
        {
            return LoginPage(html, returnUrl, email, "invalid_credentials");
        }

        var result = await signIn.PasswordSignInAsync(user, form["password"].ToString(), isPersistent: false, lockoutOnFailure: true);
        if (result.Succeeded)
        {
            return Results.Redirect(SafeReturnUrl(returnUrl));
        }

        if (result.RequiresTwoFactor)
        {
            return Results.Redirect(QueryHelpers.AddQueryString("/account/totp", "ReturnUrl", SafeReturnUrl(returnUrl)));
        }

        return LoginPage(html, returnUrl, email,
            result.IsLockedOut ? "locked_out" : result.IsNotAllowed ? "email_unconfirmed" : "invalid_credentials");
    }

    private static async Task<IResult> TotpForm(HttpContext http, IAntiforgery af, SignInManager<MachiUser> signIn, string? returnUrl) =>
        await signIn.GetTwoFactorAuthenticationUserAsync() is null
            ? Results.Redirect("/account/login")
            : TotpPage(Html.For(http, af), returnUrl, null);

    private static IResult TotpPage(Html html, string? returnUrl, string? error) =>
        html.Page("totp_title",
            (error is null ? "" : html.Error(error))
            + html.Form("/account/totp", "totp_submit",
                html.Field("code", "totp_code", "text", "one-time-code", extra: "inputmode=\"numeric\" pattern=\"[0-9 ]*\""),
                Html.Hidden("ReturnUrl", returnUrl)),
            error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);

    private static async Task<IResult> Totp(HttpContext http, IAntiforgery af, SignInManager<MachiUser> signIn)
    {
        var html = Html.For(http, af);
        if (await ReadFormAsync(http, af) is not { } form)
        {
            return TotpPage(html, null, "form_expired");
        }

        var returnUrl = form["ReturnUrl"].ToString();
        if (await signIn.GetTwoFactorAuthenticationUserAsync() is null)
        {
            return Results.Redirect("/account/login");
        }

        var code = form["code"].ToString().Replace(" ", "", StringComparison.Ordinal);
        var result = await signIn.TwoFactorAuthenticatorSignInAsync(code, isPersistent: false, rememberClient: false);
        return result.Succeeded ? Results.Redirect(SafeReturnUrl(returnUrl))
            : TotpPage(html, returnUrl, result.IsLockedOut ? "locked_out" : "invalid_code");
    }

    private static async Task<IResult> TotpSetupForm(HttpContext http, IAntiforgery af, UserManager<MachiUser> users)
    {
        if (await users.GetUserAsync(http.User) is not { } user)
        {
            return Results.Redirect("/account/login?ReturnUrl=%2Faccount%2Ftotp%2Fsetup");
        }

        return await TotpSetupPage(Html.For(http, af), users, user, null);
    }

    private static async Task<IResult> TotpSetupPage(Html html, UserManager<MachiUser> users, MachiUser user, string? error)
    {
        if (user.TwoFactorEnabled)
        {
            return html.Page("totp_setup_title", html.Notice("totp_enabled"));
        }

        var key = await users.GetAuthenticatorKeyAsync(user);
        if (string.IsNullOrEmpty(key))
        {
            await users.ResetAuthenticatorKeyAsync(user);
            key = await users.GetAuthenticatorKeyAsync(user);
        }

        var uri = $"otpauth://totp/{Uri.EscapeDataString("Machi:" + user.Email)}?secret={key}&issuer=Machi&digits=6";
        var grouped = string.Join(' ', Enumerable.Range(0, (key!.Length + 3) / 4).Select(i => key.Substring(i * 4, Math.Min(4, key.Length - (i * 4)))));
        var body = (error is null ? "" : html.Error(error))
            + $"<p>{Html.E(html.T("totp_setup_help"))}</p>"
            + $"<p>{Html.E(html.T("totp_key"))}: <code data-key=\"{Html.E(key)}\">{Html.E(grouped)}</code></p>"
            + $"<p><a href=\"{Html.E(uri)}\">otpauth://</a></p>"
            + html.Form("/account/totp/setup", "totp_submit",
                html.Field("code", "totp_code", "text", "one-time-code", extra: "inputmode=\"numeric\" pattern=\"[0-9 ]*\""));
        return html.Page("totp_setup_title", body, error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    private static async Task<IResult> TotpSetup(HttpContext http, IAntiforgery af, UserManager<MachiUser> users, SignInManager<MachiUser> signIn)
    {
        var html = Html.For(http, af);
        if (await users.GetUserAsync(http.User) is not { } user)
        {
            return Results.Redirect("/account/login?ReturnUrl=%2Faccount%2Ftotp%2Fsetup");
        }

        if (await ReadFormAsync(http, af) is not { } form)
        {
            return await TotpSetupPage(html, users, user, "form_expired");
        }

        var code = form["code"].ToString().Replace(" ", "", StringComparison.Ordinal);
        if (!await users.VerifyTwoFactorTokenAsync(user, users.Options.Tokens.AuthenticatorTokenProvider, code))
        {
            return await TotpSetupPage(html, users, user, "invalid_code");
        }

        await users.SetTwoFactorEnabledAsync(user, true);
        await signIn.RefreshSignInAsync(user);
        return html.Page("totp_setup_title", html.Notice("totp_enabled") + $"<nav>{html.Link("/account", "account_title")}</nav>");
    }

    private static IResult SignupForm(HttpContext http, IAntiforgery af) => SignupPage(Html.For(http, af), null, null, null);

    private static IResult SignupPage(Html html, string? email, string? error, IEnumerable<string>? details) =>
        html.Page("signup_title",
            (error is null ? "" : html.Error(error, details))
            + html.Form("/account/signup", "signup_submit",
                html.Field("email", "email", "email", "email", email),
                html.Field("password", "password_new", "password", "new-password", extra: "minlength=\"8\""),
                html.Field("password2", "password_again", "password", "new-password", extra: "minlength=\"8\""))
            + $"<nav>{html.Link("/account/login", "login_link")}</nav>",
            error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);

    private static async Task<IResult> Signup(HttpContext http, IAntiforgery af, AccountService accounts, IOptions<TrustOptions> options)
    {
        var html = Html.For(http, af);
        if (await ReadFormAsync(http, af) is not { } form)
        {
            return SignupPage(html, null, "form_expired", null);
        }

        var email = form["email"].ToString().Trim();
        var password = form["password"].ToString();
        if (password != form["password2"].ToString())
        {
            return SignupPage(html, email, "password_mismatch", null);
        }

        var (user, errors) = await accounts.CreateAsync(AccountRoles.Resident, email, password, emailConfirmed: false);
        if (user is null)
        {
            return SignupPage(html, email, "rejected", errors);
        }

        await accounts.SendVerificationAsync(user, BaseAddress(http, options.Value), html.Lang, http.RequestAborted);
        return html.Page("signup_title", html.Notice("check_mail"));
    }

    private static async Task<IResult> VerifyEmail(HttpContext http, IAntiforgery af, UserManager<MachiUser> users, string? user, string? token)
    {
        var html = Html.For(http, af);
        var account = user is null ? null : await users.FindByIdAsync(user);
        if (account is null || DecodeToken(token) is not { } decoded || !(await users.ConfirmEmailAsync(account, decoded)).Succeeded)
        {
            return html.Page("verify_title", html.Error("invalid_link"), StatusCodes.Status400BadRequest);
        }

        return html.Page("verify_title", html.Notice("verified") + $"<nav>{html.Link("/account/login", "login_link")}</nav>");
    }

    private static IResult ForgotForm(HttpContext http, IAntiforgery af)
    {
        var html = Html.For(http, af);
        return html.Page("forgot_title", html.Form("/account/forgot-password", "forgot_submit", html.Field("email", "email", "email", "email")));
    }

    private static async Task<IResult> Forgot(HttpContext http, IAntiforgery af, UserManager<MachiUser> users, AccountService accounts, IOptions<TrustOptions> options)
    {
        var html = Html.For(http, af);
        if (await ReadFormAsync(http, af) is not { } form)
        {
            return html.Page("forgot_title", html.Error("form_expired"), StatusCodes.Status400BadRequest);
        }

        // The same answer whether or not the address has an account, so the page does not reveal who is registered.
        if (await users.FindByEmailAsync(form["email"].ToString().Trim()) is { EmailConfirmed: true } user)
        {
            await accounts.SendPasswordResetAsync(user, BaseAddress(http, options.Value), html.Lang, http.RequestAborted);
        }

        return html.Page("forgot_title", html.Notice("reset_sent"));
    }

    private static IResult ResetForm(HttpContext http, IAntiforgery af, string? user, string? token) =>
        ResetPage(Html.For(http, af), user, token, null, null);

    private static IResult ResetPage(Html html, string? user, string? token, string? error, IEnumerable<string>? details) =>
        html.Page("reset_title",
            (error is null ? "" : html.Error(error, details))
            + html.Form("/account/reset-password", "reset_submit",
                html.Field("password", "password_new", "password", "new-password", extra: "minlength=\"8\""),
                html.Field("password2", "password_again", "password", "new-password", extra: "minlength=\"8\""),
                Html.Hidden("user", user),
                Html.Hidden("token", token)),
            error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);

    private static async Task<IResult> Reset(HttpContext http, IAntiforgery af, UserManager<MachiUser> users)
    {
        var html = Html.For(http, af);
        if (await ReadFormAsync(http, af) is not { } form)
        {
            return ResetPage(html, null, null, "form_expired", null);
        }

        var (userId, token, password) = (form["user"].ToString(), form["token"].ToString(), form["password"].ToString());
        if (password != form["password2"].ToString())
        {
            return ResetPage(html, userId, token, "password_mismatch", null);
        }

        var user = await users.FindByIdAsync(userId);
        if (user is null || DecodeToken(token) is not { } decoded)
        {
            return ResetPage(html, userId, token, "invalid_link", null);
        }

        var result = await users.ResetPasswordAsync(user, decoded, password);
        if (!result.Succeeded)
        {
            var invalidToken = result.Errors.Any(e => e.Code == nameof(IdentityErrorDescriber.InvalidToken));
            return ResetPage(html, userId, token, invalidToken ? "invalid_link" : "rejected",
                invalidToken ? null : result.Errors.Select(e => e.Description));
        }

        await users.ResetAccessFailedCountAsync(user);
        return html.Page("reset_title", html.Notice("password_changed") + $"<nav>{html.Link("/account/login", "login_link")}</nav>");
    }

    private static async Task<IResult> Logout(HttpContext http, IAntiforgery af, SignInManager<MachiUser> signIn)
    {
        if (await ReadFormAsync(http, af) is null)
        {
            return Results.BadRequest();
        }

        await signIn.SignOutAsync();
        return Results.Redirect("/account/login");
    }

    /// <summary>The posted form when its antiforgery token is valid; null otherwise.</summary>
    /// <summary>Staff's list of registered services and the form to register one (name, operator, purposes, categories).</summary>
    private static async Task<IResult> Services(HttpContext http, IAntiforgery af, UserManager<MachiUser> users, ServiceDirectory directory)
    {
        var html = Html.For(http, af);
        return await StaffAsync(http, users) switch
        {
            null => Results.Redirect("/account/login?ReturnUrl=%2Faccount%2Fservices"),
            false => html.Page("services_title", html.Error("staff_only"), StatusCodes.Status403Forbidden),
            true => html.Page("services_title", await ServicesBodyAsync(html, directory, null, http.RequestAborted)),
        };
    }

    private static async Task<IResult> RegisterService(HttpContext http, IAntiforgery af, UserManager<MachiUser> users, ServiceDirectory directory, ClientRegistry clients)
    {
        var html = Html.For(http, af);
        if (await StaffAsync(http, users) is not true)
        {
            return html.Page("services_title", html.Error("staff_only"), StatusCodes.Status403Forbidden);
        }

        if (await ReadFormAsync(http, af) is not { } form)
        {
            return html.Page("services_title", html.Error("form_expired"), StatusCodes.Status400BadRequest);
        }

        static string[] List(string text) => text.Split([',', ' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        try
        {
            var redirects = List(form["redirects"].ToString()).Select(u => Uri.TryCreate(u, UriKind.Absolute, out var uri) ? uri
                : throw new ArgumentException($"'{u}' is not an absolute URL")).ToList();
            var scopes = form["write"] == "on" ? new[] { TrustScopes.NgsiRead, TrustScopes.NgsiWrite } : [TrustScopes.NgsiRead];
            var credentials = await clients.CreateAsync(new ClientRequest(form["name"].ToString(), redirects.Count > 0 ? [.. scopes, "openid"] : scopes,
                RedirectUris: redirects, Operator: form["operator"].ToString(), Purposes: List(form["purposes"].ToString()),
                Categories: List(form["categories"].ToString())), http.RequestAborted);
            var shown = html.Notice("service_registered")
                + $"<dl><dt>{Html.E(html.T("service_client_id"))}</dt><dd><code data-client-id>{Html.E(credentials.ClientId)}</code></dd>"
                + $"<dt>{Html.E(html.T("service_client_secret"))}</dt><dd><code data-client-secret>{Html.E(credentials.ClientSecret)}</code></dd></dl>";
            return html.Page("services_title", await ServicesBodyAsync(html, directory, shown, http.RequestAborted));
        }
        catch (ArgumentException e)
        {
            return html.Page("services_title", await ServicesBodyAsync(html, directory, html.Error("service_invalid", [e.Message]), http.RequestAborted),
                StatusCodes.Status400BadRequest);
        }
    }

    /// <summary>True for staff, false for anyone else signed in, null when nobody is.</summary>
    private static async Task<bool?> StaffAsync(HttpContext http, UserManager<MachiUser> users) =>
        await users.GetUserAsync(http.User) is { } user ? user.Role == AccountRoles.Staff : null;

    private static async Task<string> ServicesBodyAsync(Html html, ServiceDirectory directory, string? above, CancellationToken ct)
    {
        var body = new StringBuilder(above ?? "").Append("<p>").Append(Html.E(html.T("services_intro"))).Append("</p>");
        var services = (await directory.ListAsync(ct)).Where(s => s.Purposes.Count > 0).ToList();
        if (services.Count == 0)
        {
            body.Append("<p>").Append(Html.E(html.T("services_none"))).Append("</p>");
        }

        foreach (var service in services)
        {
            body.Append("<section data-service=\"").Append(Html.E(service.ClientId)).Append("\"><h2>").Append(Html.E(service.Name)).Append("</h2><dl>")
                .Append("<dt>").Append(Html.E(html.T("service_operator"))).Append("</dt><dd>").Append(Html.E(service.Operator ?? "—")).Append("</dd>")
                .Append("<dt>").Append(Html.E(html.T("service_client_id"))).Append("</dt><dd><code>").Append(Html.E(service.ClientId)).Append("</code></dd>")
                .Append("<dt>").Append(Html.E(html.T("consent_purpose"))).Append("</dt><dd data-purposes>").Append(Html.E(string.Join(", ", service.Purposes))).Append("</dd>")
                .Append("<dt>").Append(Html.E(html.T("consent_categories"))).Append("</dt><dd data-categories>").Append(Html.E(string.Join(", ", service.Categories))).Append("</dd>")
                .Append("</dl></section>");
        }

        return body.Append(html.Form("/account/services", "service_register",
            html.Field("name", "service_name", "text", "off"),
            html.Field("operator", "service_operator", "text", "organization"),
            html.Field("purposes", "service_purposes", "text", "off"),
            html.Field("categories", "service_categories", "text", "off"),
            html.Field("redirects", "service_redirects", "text", "off", required: false),
            $"<label><input type=\"checkbox\" name=\"write\" style=\"width:auto\"> {Html.E(html.T("service_write"))}</label>")).ToString();
    }

    private static async Task<IFormCollection?> ReadFormAsync(HttpContext http, IAntiforgery af)
    {
        if (!http.Request.HasFormContentType)
        {
            return null;
        }

        try
        {
            await af.ValidateRequestAsync(http);
            return await http.Request.ReadFormAsync(http.RequestAborted);
        }
        catch (AntiforgeryValidationException)
        {
            return null;
        }
    }

    /// <summary>Only a path on this site: an absolute or protocol-relative URL would make the login an open redirect.</summary>
    internal static string SafeReturnUrl(string? returnUrl) =>
        returnUrl is { Length: > 0 } url && url[0] == '/' && (url.Length == 1 || (url[1] != '/' && url[1] != '\\'))
            ? url
            : "/account";

    private static Uri BaseAddress(HttpContext http, TrustOptions options) =>
        options.PublicBaseUrl is { Length: > 0 } configured
            ? new Uri(configured.TrimEnd('/') + "/")
            : new Uri($"{http.Request.Scheme}://{http.Request.Host}{http.Request.PathBase}/");

    private static string? DecodeToken(string? token)
    {
        try
        {
            return string.IsNullOrEmpty(token) ? null : Encoding.UTF8.GetString(WebEncoders.Base64UrlDecode(token));
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
