using System.Diagnostics;
using System.Globalization;
using Machi.Host.Cli;
using Machi.Snow.Tests.Infrastructure;
using Machi.Tests.Browser;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Playwright;

namespace Machi.Snow.Tests;

public sealed class SnowMapBrowserTests(Chromium chromium) : IClassFixture<Chromium>
{
    /// <summary>No tiles: the air-gapped map, vector layers on a plain background.</summary>
    private static readonly Dictionary<string, string?> NoTiles = new() { ["Snow:TileUrl"] = "" };

    [Fact]
    public async Task The_map_shows_a_plow_moved_through_the_OsmAnd_endpoint_within_2_seconds()
    {
        await using var server = await MachiServer.StartAsync(settings: NoTiles);
        var token = await Plows.RegisterAsync(server, "live-1", "除雪車テスト");
        var t0 = DateTimeOffset.UtcNow.AddSeconds(-30);
        Assert.Equal(200, (await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("live-1", token, Plows.CastleLat, Plows.CastleLon, t0, plow: "plowing"))).Status);
        await using var context = await chromium.NewContextAsync(server.BaseAddress);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/snow");
        var plow = page.Locator("[data-id='live-1']");
        await Assertions.Expect(plow).ToHaveAttributeAsync("data-state", "plowing");
        await Assertions.Expect(page.Locator("#live-status")).ToHaveTextAsync("ライブ");

        // Move it: the marker must follow within 2 s of the position's acknowledgement.
        const double lat = 37.4887;
        var stopwatch = Stopwatch.StartNew();
        Assert.Equal(200, (await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("live-1", token, lat, Plows.CastleLon, t0.AddSeconds(15), bearing: 0, plow: "salting"))).Status);
        await Assertions.Expect(plow).ToHaveAttributeAsync("data-lat", lat.ToString("R", CultureInfo.InvariantCulture), new() { Timeout = 2000 });
        stopwatch.Stop();

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"took {stopwatch.Elapsed}");
        await Assertions.Expect(plow).ToHaveAttributeAsync("data-state", "salting");
        Assert.Contains("除雪車テスト", await plow.GetAttributeAsync("aria-label") ?? "", StringComparison.Ordinal);
        await Chromium.ScreenshotAsync(page, "snow-map-live");
    }

    [Fact]
    public async Task The_last_plowed_search_answers_by_town_name_and_by_tapping_the_map()
    {
        await using var server = await MachiServer.StartAsync(settings: NoTiles);
        var token = await Plows.RegisterAsync(server, "search-1");
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-30);
        // Through the 栄町 point (37.496157, 139.930875), plowing.
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("search-1", token, 37.4950, 139.9309, t0, plow: "plowing"));
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("search-1", token, 37.4972, 139.9309, t0.AddSeconds(30), plow: "plowing"));
        await using var context = await chromium.NewContextAsync(server.BaseAddress);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/snow");

        await page.GetByLabel("町名・字名").FillAsync("栄町");
        await page.GetByRole(AriaRole.Button, new() { Name = "検索" }).ClickAsync();

        var answer = page.Locator("[data-result='栄町'] [data-last-plowed]");
        await Assertions.Expect(answer).Not.ToHaveAttributeAsync("data-last-plowed", "");
        var when = DateTimeOffset.Parse((await answer.GetAttributeAsync("data-last-plowed"))!, CultureInfo.InvariantCulture);
        Assert.Equal(t0.AddSeconds(30).ToUnixTimeSeconds(), when.ToUnixTimeSeconds());
        await Assertions.Expect(answer).ToContainTextAsync("最終除雪");
        await Chromium.ScreenshotAsync(page, "snow-search-town");

        // Tapping the map asks about the tapped point (the search centred the map on 栄町, so the middle is plowed).
        var box = (await page.Locator("#map").BoundingBoxAsync())!;
        await page.Mouse.ClickAsync(box.X + (box.Width / 2), box.Y + (box.Height / 2));
        await Assertions.Expect(page.Locator("#search-results")).ToContainTextAsync("地図で選んだ地点");
        await Assertions.Expect(page.Locator("#search-results [data-last-plowed]")).Not.ToHaveAttributeAsync("data-last-plowed", "");
        await Chromium.ScreenshotAsync(page, "snow-search-tap");
    }

    [Fact]
    public async Task The_map_draws_base_tiles_when_configured_and_English_is_remembered()
    {
        var tile = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==");
        var tileRequests = 0;
        await using var server = await MachiServer.StartAsync(
            settings: new Dictionary<string, string?> { ["Snow:TileUrl"] = "/test-tiles/{z}/{x}/{y}.png", ["Snow:TileAttribution"] = "Test tiles" },
            configureApp: app => app.MapGet("/test-tiles/{z}/{x}/{y}.png", () =>
            {
                Interlocked.Increment(ref tileRequests);
                return Results.Bytes(tile, "image/png");
            }));
        await using var context = await chromium.NewContextAsync(server.BaseAddress, phone: false);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/snow");

        await Assertions.Expect(page.Locator("[data-layer='tiles'] image").First).ToBeAttachedAsync();
        await Assertions.Expect(page.Locator("#tile-attribution")).ToContainTextAsync("Test tiles");
        await Assertions.Expect(page.Locator("[data-layer='towns'] circle").First).ToBeAttachedAsync();

        await page.GetByText("English").ClickAsync();
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Snowplow Navi");
        await page.GotoAsync("/snow");
        await Assertions.Expect(page.Locator("html")).ToHaveAttributeAsync("lang", "en");
        await Assertions.Expect(page.GetByLabel("Town or area name (町字/小字)")).ToBeVisibleAsync();
        Assert.True(tileRequests > 0);
        await Chromium.ScreenshotAsync(page, "snow-map-tiles-en");
    }

    [Fact]
    public async Task Staff_see_units_not_reporting_coverage_per_district_and_export_a_days_tracks()
    {
        await using var server = await MachiServer.StartAsync(settings: NoTiles);
        using (var output = new StringWriter())
        using (var errors = new StringWriter())
        {
            Assert.Equal(0, await MachiCli.RunAsync(["user", "add", "--role", "staff", "--email", "yuki@city.example", "--password", "correct horse 1", "--data", server.DataDirectory], output, errors));
            Assert.Equal(0, await MachiCli.RunAsync(["user", "add", "--role", "resident", "--email", "hana@example.jp", "--password", "correct horse 2", "--data", server.DataDirectory], output, errors));
        }

        var token = await Plows.RegisterAsync(server, "op-1", "除雪車 運行中");
        await Plows.RegisterAsync(server, "op-silent", "除雪車 無線不通");
        var now = DateTimeOffset.UtcNow;
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("op-1", token, 37.4950, 139.9309, now.AddSeconds(-40), plow: "plowing"));
        await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("op-1", token, 37.4972, 139.9309, now.AddSeconds(-10), plow: "plowing"));

        // A resident is not let in.
        await using (var resident = await chromium.NewContextAsync(server.BaseAddress))
        {
            var page = await resident.NewPageAsync();
            await page.GotoAsync("/snow/operator");
            await SignInAsync(page, "hana@example.jp", "correct horse 2");
            Assert.DoesNotContain("/snow/operator", new Uri(page.Url).AbsolutePath, StringComparison.Ordinal);
        }

        await using var context = await chromium.NewContextAsync(server.BaseAddress, phone: false);
        var staff = await context.NewPageAsync();
        await staff.GotoAsync("/snow/operator");
        await SignInAsync(staff, "yuki@city.example", "correct horse 1");
        await Chromium.WaitForAddressAsync(staff, Chromium.PathPattern("/snow/operator"));

        await Assertions.Expect(staff.Locator("[data-stale] [data-unit='op-silent']")).ToBeVisibleAsync();
        await Assertions.Expect(staff.Locator("[data-stale] [data-unit='op-1']")).ToHaveCountAsync(0);
        await Assertions.Expect(staff.Locator("[data-coverage] [data-district='栄町'] td").Nth(2)).ToHaveTextAsync("1");
        await Chromium.ScreenshotAsync(staff, "snow-operator");

        var day = (now + TimeSpan.FromHours(9)).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var csv = await context.APIRequest.GetAsync($"/snow/operator/tracks.csv?day={day}");
        Assert.Equal(200, csv.Status);
        var lines = (await csv.TextAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("device_id,time_utc,time_jst,lat,lon", lines[0], StringComparison.Ordinal);
        Assert.Equal(2, lines.Count(l => l.StartsWith("op-1,", StringComparison.Ordinal)));
        Assert.Equal(400, (await context.APIRequest.GetAsync("/snow/operator/tracks.csv?day=someday")).Status);

        // Register a unit from the page: its token is shown once and works at once.
        await staff.GetByLabel("端末ID").FillAsync("op-new");
        await staff.GetByRole(AriaRole.Button, new() { Name = "登録（トークン発行）" }).ClickAsync();
        var newToken = await staff.Locator("[data-token]").TextContentAsync();
        Assert.Equal(200, (await Plows.ReportAsync(server.Anonymous, Plows.OsmAndQuery("op-new", newToken, 37.5, 139.93))).Status);
        await Chromium.ScreenshotAsync(staff, "snow-operator-registered");
    }

    private static async Task SignInAsync(IPage page, string email, string password)
    {
        await Chromium.WaitForAddressAsync(page, Chromium.PathPattern("/account/login"));
        await page.Locator("#email").FillAsync(email);
        await page.Locator("#password").FillAsync(password);
        await page.Locator("form[action='/account/login'] button[type=submit]").ClickAsync();
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
    }
}
