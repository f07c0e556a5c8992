using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Machi.Tests.Browser;

/// <summary>
/// Debian's Chromium (/usr/bin/chromium, which test.sh installs) driven by Playwright, headless; Playwright never
/// downloads a browser. A fixture (per class or per collection); each test opens its own context (cookies, storage).
/// Linked into the portal's and Snowplow Navi's browser tests.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where screenshots go: screenshots/ beside the test assembly (the test output).</summary>
    public static string ScreenshotDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots");

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(ExecutablePath), $"{ExecutablePath} is missing: install the Debian package chromium (./test.sh does).");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }

    /// <summary>A fresh profile, Japanese by default: sized like a phone (390×844, touch) or a desktop (1280×900).</summary>
    public Task<IBrowserContext> NewContextAsync(Uri baseAddress, bool phone = true) =>
        Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseAddress.AbsoluteUri,
            ViewportSize = phone ? new ViewportSize { Width = 390, Height = 844 } : new ViewportSize { Width = 1280, Height = 900 },
            DeviceScaleFactor = phone ? 2 : 1,
            IsMobile = phone,
            HasTouch = phone,
            Locale = "ja-JP",
            TimezoneId = "Asia/Tokyo",
        });

    /// <summary>
    /// Waits until the page's address matches <paramref name="url"/>, polling the address only. Not
    /// <c>WaitForURLAsync</c>: when the address already matches (a fast chain of redirects) it waits for the page's
    /// load event whatever <c>WaitUntil</c> says, and after a sign-in's redirects that event once never came in a full
    /// run. A minute and a half: Argon2id and the redirects share two cores with the other test classes' servers.
    /// </summary>
    public static Task WaitForAddressAsync(IPage page, Regex url) =>
        Assertions.Expect(page).ToHaveURLAsync(url, new PageAssertionsToHaveURLOptions { Timeout = 90_000 });

    /// <summary>The address pattern for a path (and any query) under the page's site.</summary>
    public static Regex PathPattern(string path) => new("^https?://[^/]+" + Regex.Escape(path) + @"(\?.*)?$");

    public static async Task ScreenshotAsync(IPage page, string name)
    {
        Directory.CreateDirectory(ScreenshotDirectory);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotDirectory, name + ".png"), FullPage = true });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }
}
