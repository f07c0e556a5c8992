using System.Globalization;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Machi.Tests.Browser;
using Microsoft.Playwright;

namespace Machi.Portal.Tests;

/// <summary>
/// The portal in a real browser (Debian Chromium through Playwright): a resident on a phone and a member of staff at a
/// PC. Every page visited is screenshotted (bin/…/screenshots/) and checked with axe: no serious or critical violation.
/// </summary>
[Collection(ChromiumGroup.Name)]
public sealed class ResidentJourneyTests(Chromium chromium)
{
    private static async Task CheckAsync(IPage page, string name)
    {
        await Chromium.ScreenshotAsync(page, name);
        AxeResult result = await page.RunAxe();
        var serious = result.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(serious.Count == 0, $"{name} ({page.Url}): " + string.Join("\n", serious.Select(v =>
            $"{v.Impact} {v.Id}: {v.Help} — {string.Join(" | ", v.Nodes.Select(n => n.Html))}")));
    }

    private static async Task SignInAsync(IPage page, string email)
    {
        await page.Locator("#email").FillAsync(email);
        await page.Locator("#password").FillAsync(PortalClient.Password);
        await page.Locator("main button[type=submit]").ClickAsync();
    }

    [Fact]
    public async Task A_resident_on_a_phone_switches_language_signs_in_sets_a_profile_applies_and_follows_staff_decisions_and_alerts()
    {
        await using var server = await MachiServer.StartAsync();
        await PortalClient.AddUserAsync(server.DataDirectory, "resident", "taro@aizu.example");
        await PortalClient.AddUserAsync(server.DataDirectory, "staff", "kankyo@city.aizu.example");
        await using var phone = await chromium.NewContextAsync(server.BaseAddress);
        await using var desk = await chromium.NewContextAsync(server.BaseAddress, phone: false);
        var resident = await phone.NewPageAsync();

        // Japanese by default, English a tap away, and back.
        await resident.GotoAsync("/");
        Assert.Equal("ja", await resident.Locator("html").GetAttributeAsync("lang"));
        Assert.Equal("会津若松+ ホーム", await resident.Locator("h1").InnerTextAsync());
        Assert.True(await resident.Locator("[data-tile='snow'] .soon-label").IsVisibleAsync(), "services not built yet say so");
        await CheckAsync(resident, "01-home-ja");
        await resident.Locator("[data-lang-switch]").ClickAsync();
        Assert.Equal("en", await resident.Locator("html").GetAttributeAsync("lang"));
        Assert.Equal("Aizuwakamatsu+ home", await resident.Locator("h1").InnerTextAsync());
        await CheckAsync(resident, "02-home-en");
        await resident.GotoAsync("/portal/procedures");
        Assert.Equal("Online procedures", await resident.Locator("h1").InnerTextAsync());
        await resident.Locator("[data-lang-switch]").ClickAsync();
        Assert.Equal("オンライン手続き", await resident.Locator("h1").InnerTextAsync());
        await CheckAsync(resident, "03-procedures-ja");

        // Sign in through Trust's login page and come back to the portal.
        await resident.GotoAsync("/");
        await resident.Locator("[data-login]").ClickAsync();

        // The login page once took more than Playwright's 30 s to fire its load event in a full run (two cores shared
        // with the other test classes' servers): wait for the address, then for the form itself.
        await Chromium.WaitForAddressAsync(resident, Chromium.PathPattern("/account/login"));
        await resident.Locator("#email").WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
        await CheckAsync(resident, "04-login");
        await SignInAsync(resident, "taro@aizu.example");

        // Back on the portal's home page, signed in (the address once the redirects are done, then the signed-in header:
        // not the page's load event, which the sign-in's chain of redirects made unreliable to wait for).
        await Chromium.WaitForAddressAsync(resident, Chromium.PathPattern("/"));
        await resident.Locator("a[href='/account/consents']").WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
        Assert.True(await resident.Locator("a[href='/account/consents']").IsVisibleAsync());
        Assert.True(await resident.Locator("a[href='/account/access-log']").IsVisibleAsync());
        Assert.Equal(0, await resident.Locator("[data-for-you]").CountAsync());

        // Opt in: a profile, then the feed shows what is for this household and district.
        await resident.Locator("header nav a[href='/portal/profile']").ClickAsync();
        await CheckAsync(resident, "05-profile-empty");
        await resident.Locator("#district").SelectOptionAsync("一箕町大字八幡");
        await resident.GetByLabel("子どもがいる").CheckAsync();
        await resident.GetByLabel("除雪・雪").CheckAsync();
        await resident.Locator("main form[action='/portal/profile'] button").ClickAsync();
        await resident.Locator("[data-notice='profile_saved']").WaitForAsync();
        await CheckAsync(resident, "06-profile-saved");
        await resident.Locator("header nav a[href='/']").ClickAsync();
        var water = resident.Locator(".card", new PageLocatorOptions { HasText = "一箕町大字八幡地区 水道管工事" });
        Assert.True(await water.Locator("[data-for-you]").IsVisibleAsync(), "the district's notice is marked for this resident");
        Assert.Equal(0, await resident.Locator(".card", new PageLocatorOptions { HasText = "北会津町古舘地区" }).CountAsync());
        await CheckAsync(resident, "07-home-personal");

        // Apply for oversized waste collection from the phone, with a photo.
        await resident.GotoAsync("/portal/procedures/sodai-gomi");
        await resident.Locator("#name").FillAsync("会津 太郎");
        await resident.Locator("#phone").FillAsync("0242-39-1234");
        await resident.Locator("#district").SelectOptionAsync("一箕町大字八幡");
        await resident.Locator("#address").FillAsync("1-2-3");
        await resident.Locator("#items").FillAsync("たんす 1点");
        await resident.Locator("#count").FillAsync("1");
        var day = DateTimeOffset.UtcNow.ToOffset(TimeSpan.FromHours(9)).AddDays(10).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        await resident.Locator("#date").FillAsync(day);
        await resident.Locator("#place").SelectOptionAsync("entrance");
        await resident.Locator("#ticket").CheckAsync();
        await resident.Locator("#photo").SetInputFilesAsync(new FilePayload { Name = "tansu.png", MimeType = "image/png", Buffer = Files.Png });
        await CheckAsync(resident, "08-procedure-form");
        await resident.Locator("main form button[type=submit]").ClickAsync();
        await resident.Locator("[data-notice='application_submitted']").WaitForAsync();
        Assert.Equal("submitted", await resident.Locator("main p [data-status]").First.GetAttributeAsync("data-status"));
        Assert.True(await resident.Locator("[data-attachment]", new PageLocatorOptions { HasText = "tansu.png" }).IsVisibleAsync());
        await CheckAsync(resident, "09-application-submitted");
        var application = new Uri(resident.Url).AbsolutePath;

        // Staff at a PC: the queue, the application, in review then completed with a comment.
        var staff = await desk.NewPageAsync();
        await staff.GotoAsync("/portal/staff/queue");
        await Chromium.WaitForAddressAsync(staff, Chromium.PathPattern("/account/login"));
        await staff.Locator("#email").WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
        await SignInAsync(staff, "kankyo@city.aizu.example");
        await Chromium.WaitForAddressAsync(staff, Chromium.PathPattern("/portal/staff/queue"));
        await staff.Locator("h1").WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
        await CheckAsync(staff, "10-staff-queue");
        await staff.Locator("[data-queue-item] a").First.ClickAsync();
        await CheckAsync(staff, "11-staff-application");
        await staff.Locator("#status").SelectOptionAsync("in_review");
        await staff.Locator("main form[action$='/status'] button").ClickAsync();
        await staff.Locator("[data-notice='status_changed']").WaitForAsync();
        await staff.Locator("#status").SelectOptionAsync("completed");
        await staff.Locator("#comment").FillAsync("12月10日に収集します。処理券を貼って玄関先に出してください。");
        await staff.Locator("main form[action$='/status'] button").ClickAsync();
        await staff.Locator("[data-notice='status_changed']").WaitForAsync();
        await CheckAsync(staff, "12-staff-application-completed");

        // The resident sees each change: status, comment, notifications.
        await resident.GotoAsync(application);
        Assert.Equal("completed", await resident.Locator("main p [data-status]").First.GetAttributeAsync("data-status"));
        Assert.True(await resident.Locator("[data-comment]", new PageLocatorOptions { HasText = "12月10日に収集します" }).IsVisibleAsync());
        Assert.Equal("2", await resident.Locator("[data-unread]").GetAttributeAsync("data-unread"));
        await CheckAsync(resident, "13-application-completed");
        await resident.Locator("header nav a[href='/portal/notifications']").ClickAsync();
        Assert.Equal(2, await resident.Locator("[data-notification]").CountAsync());
        await CheckAsync(resident, "14-notifications");

        // An evacuation order for the resident's district reaches the open home page without a reload.
        await resident.GotoAsync("/");
        await resident.WaitForFunctionAsync("document.getElementById('alerts').dataset.live === 'on'");
        await staff.GotoAsync("/portal/staff/alerts");
        await CheckAsync(staff, "15-staff-alerts");
        await staff.Locator("#level").SelectOptionAsync("evacuate");
        await staff.Locator("#title_ja").FillAsync("湯川の増水による避難指示");
        await staff.Locator("#title_en").FillAsync("Evacuation order: the Yugawa river is rising");
        await staff.Locator("#body_ja").FillAsync("対象地区の方は直ちに指定緊急避難場所へ避難してください。");
        await staff.Locator("#body_en").FillAsync("Residents of the districts below: go to a designated evacuation site now.");
        await staff.Locator("#districts").SelectOptionAsync(["一箕町大字八幡", "一箕町大字亀賀"]);
        await staff.Locator("main form[action='/portal/staff/alerts'] button").ClickAsync();
        await staff.Locator("[data-notice='alert_issued']").WaitForAsync();
        var banner = resident.Locator("#alerts [data-alert]");
        await banner.WaitForAsync(new LocatorWaitForOptions { Timeout = 10_000 });
        Assert.Contains("湯川の増水による避難指示", await banner.InnerTextAsync(), StringComparison.Ordinal);
        Assert.True(await resident.Locator("[data-alert-mine]").IsVisibleAsync(), "the resident's own district is pointed out");
        await CheckAsync(resident, "16-home-alert");
        await resident.Locator("[data-lang-switch]").ClickAsync();
        Assert.Contains("Evacuation order: the Yugawa river is rising", await resident.Locator("#alerts").InnerTextAsync(), StringComparison.Ordinal);
        await CheckAsync(resident, "17-home-alert-en");

        // Staff publish a notice from the back office too.
        await staff.GotoAsync("/portal/staff/notices");
        await CheckAsync(staff, "18-staff-notices");
    }
}
