using System.Net;
using System.Text.RegularExpressions;
using Machi.Trust.Tests.Infrastructure;
using Microsoft.AspNetCore.WebUtilities;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>
/// Staff register a service that uses residents' data — its operator, the purposes it asks consent for and the data
/// categories it needs — and get its credentials once; residents can consent to exactly that and nothing more.
/// </summary>
public sealed partial class ServiceRegistrationTests
{
    private const string Password = "tsurugajo-2026";

    private static async Task<Browser> SignedInAsync(MachiServer server, string email)
    {
        var browser = new Browser(server.BaseAddress);
        await browser.GetAsync("/account/login");
        await browser.SubmitAsync("/account/login", new Dictionary<string, string> { ["email"] = email, ["password"] = Password });
        return browser;
    }

    private static string ConsentUrl(string clientId, string purpose, string categories) =>
        QueryHelpers.AddQueryString("/consent", new Dictionary<string, string?> { ["client_id"] = clientId, ["purpose"] = purpose, ["categories"] = categories });

    [Fact]
    public async Task Staff_register_a_service_and_residents_can_consent_only_to_its_registered_purposes_and_categories()
    {
        await using var server = await MachiServer.StartAsync();
        await AddUserAsync(server.DataDirectory, "staff", "dx@city.aizuwakamatsu.example", Password);
        await AddUserAsync(server.DataDirectory, "resident", "hanako@example.jp", Password);

        // A resident may not see or use the registration page.
        using (var resident = await SignedInAsync(server, "hanako@example.jp"))
        {
            await resident.GetAsync("/account/services");
            Assert.Equal(HttpStatusCode.Forbidden, resident.Status);
            Assert.Equal("staff_only", resident.Error);
        }

        using var staff = await SignedInAsync(server, "dx@city.aizuwakamatsu.example");
        await staff.GetAsync("/account/services");
        Assert.Equal(HttpStatusCode.OK, staff.Status);

        // A purpose that is not an identifier is refused with the reason; nothing is registered.
        await staff.SubmitAsync("/account/services", new Dictionary<string, string>
        {
            ["name"] = "Broken", ["operator"] = "x", ["purposes"] = "Energy Advice!", ["categories"] = "power",
        });
        Assert.Equal(HttpStatusCode.BadRequest, staff.Status);
        Assert.Equal("service_invalid", staff.Error);
        Assert.DoesNotContain("<h2>Broken</h2>", staff.Html, StringComparison.Ordinal);

        await staff.SubmitAsync("/account/services", new Dictionary<string, string>
        {
            ["name"] = "Aizu energy advice", ["operator"] = "Aizu Energy Co.", ["purposes"] = "energy-advice", ["categories"] = "power, water", ["write"] = "on",
        });
        Assert.Equal(HttpStatusCode.OK, staff.Status);
        Assert.Equal("service_registered", staff.Notice);
        var clientId = ClientIdPattern().Match(staff.Html).Groups[1].Value;
        var secret = ClientSecretPattern().Match(staff.Html).Groups[1].Value;
        Assert.Contains("energy-advice", staff.Html, StringComparison.Ordinal);
        var token = await ClientCredentialsTokenAsync(server.Anonymous, clientId, secret);
        Assert.Contains("ngsi:write", Payload(token)["scope"]!.ToJsonString(), StringComparison.Ordinal);

        // The consent page names the operator; an unregistered purpose or category is refused.
        using var hanako = await SignedInAsync(server, "hanako@example.jp");
        foreach (var (purpose, categories) in new[] { ("marketing", "power"), ("energy-advice", "vitals"), ("energy-advice", "power,location") })
        {
            await hanako.GetAsync(ConsentUrl(clientId, purpose, categories));
            Assert.Equal(HttpStatusCode.BadRequest, hanako.Status);
            Assert.Equal("undeclared_use", hanako.Error);
        }

        await hanako.GetAsync(ConsentUrl(clientId, "energy-advice", "power"));
        Assert.Equal(HttpStatusCode.OK, hanako.Status);
        Assert.Contains("Aizu Energy Co.", hanako.Html, StringComparison.Ordinal);
        await hanako.SubmitAsync("/consent", new Dictionary<string, string> { ["decision"] = "agree" });
        Assert.Equal("/account/consents", hanako.Address!.AbsolutePath);
        Assert.Equal("consent_granted", hanako.Notice);
    }

    [GeneratedRegex("data-client-id>([^<]+)<")]
    private static partial Regex ClientIdPattern();

    [GeneratedRegex("data-client-secret>([^<]+)<")]
    private static partial Regex ClientSecretPattern();
}
