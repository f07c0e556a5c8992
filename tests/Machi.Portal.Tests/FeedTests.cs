using System.Net;
using System.Text;

namespace Machi.Portal.Tests;

/// <summary>The home feed, the opt-in profile, language switching and live emergency alerts over HTTP.</summary>
public sealed class FeedTests(PortalServer portal) : IClassFixture<PortalServer>
{
    [Fact]
    public async Task Without_a_profile_everyone_sees_every_public_notice_in_Japanese_and_English_is_remembered_once_chosen()
    {
        using var anonymous = new PortalClient(portal.Server.BaseAddress);

        var (_, ja, _) = await anonymous.GetAsync("/");
        var (_, en, _) = await anonymous.GetAsync("/?lang=en");
        var (_, remembered, _) = await anonymous.GetAsync("/portal/procedures");

        Assert.Contains("<html lang=\"ja\">", ja, StringComparison.Ordinal);
        Assert.Contains("一箕町大字八幡地区 水道管工事", ja, StringComparison.Ordinal);
        Assert.Contains("北会津町古舘地区 防災訓練", ja, StringComparison.Ordinal);
        Assert.Contains("data-feed=\"all\"", ja, StringComparison.Ordinal);
        Assert.Contains("<html lang=\"en\">", en, StringComparison.Ordinal);
        Assert.Contains("Water outage for pipe works in Ikkimachi Yawata", en, StringComparison.Ordinal);
        Assert.Contains("<html lang=\"en\">", remembered, StringComparison.Ordinal);
        Assert.Contains("Oversized waste collection", remembered, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_profile_narrows_the_feed_to_notices_for_everyone_and_for_this_resident_and_clearing_it_shows_all_again()
    {
        using var resident = await portal.ResidentAsync();

        var (saved, _, _) = await resident.PostFormAsync("/portal/profile", "/portal/profile",
            [new("district", "一箕町大字八幡"), new("age_group", "18to39"), new("household", "children"), new("interests", "snow")]);
        var (_, personal, _) = await resident.GetAsync("/");

        Assert.Equal(HttpStatusCode.Redirect, saved);
        Assert.Contains("data-feed=\"personal\"", personal, StringComparison.Ordinal);
        Assert.Contains("一箕町大字八幡地区 水道管工事", personal, StringComparison.Ordinal);
        Assert.Contains("乳幼児健康診査のご案内", personal, StringComparison.Ordinal);
        Assert.Contains("今冬の除雪作業について", personal, StringComparison.Ordinal);
        Assert.Contains("data-for-you", personal, StringComparison.Ordinal);
        Assert.DoesNotContain("北会津町古舘地区 防災訓練", personal, StringComparison.Ordinal);
        Assert.DoesNotContain("高齢者インフルエンザ", personal, StringComparison.Ordinal);
        Assert.DoesNotContain("鶴ヶ城 冬まつり", personal, StringComparison.Ordinal);

        var (deleted, _, _) = await resident.PostFormAsync("/portal/profile", "/portal/profile/delete", []);
        var (_, all, _) = await resident.GetAsync("/");

        Assert.Equal(HttpStatusCode.Redirect, deleted);
        Assert.Contains("data-feed=\"all\"", all, StringComparison.Ordinal);
        Assert.Contains("北会津町古舘地区 防災訓練", all, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_district_not_in_the_city_is_refused()
    {
        using var resident = await portal.ResidentAsync();

        var (status, html, _) = await resident.PostFormAsync("/portal/profile", "/portal/profile", [new("district", "渋谷区")]);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("会津若松市の町字から選んでください。", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Staff_schedule_a_targeted_notice_and_it_appears_only_when_due()
    {
        using var staff = await portal.StaffAsync();
        using var resident = await portal.ResidentAsync();
        await resident.PostFormAsync("/portal/profile", "/portal/profile", [new("district", "湊町大字赤井")]);
        var later = DateTimeOffset.UtcNow.ToOffset(TimeSpan.FromHours(9)).AddDays(2).ToString("yyyy-MM-dd'T'HH:mm", System.Globalization.CultureInfo.InvariantCulture);

        var (now, _, _) = await staff.PostFormAsync("/portal/staff/notices", "/portal/staff/notices",
            [new("title_ja", "湊町赤井 集会所の臨時休館"), new("title_en", "Minatomachi Akai hall closed"), new("body_ja", "設備点検のため休館します。"), new("category", "general"), new("districts", "湊町大字赤井")]);
        var (scheduled, _, _) = await staff.PostFormAsync("/portal/staff/notices", "/portal/staff/notices",
            [new("title_ja", "湊町赤井 来週のお知らせ"), new("body_ja", "まだ掲載されません。"), new("category", "general"), new("districts", "湊町大字赤井"), new("publish_at", later)]);
        var (bad, badHtml, _) = await staff.PostFormAsync("/portal/staff/notices", "/portal/staff/notices",
            [new("title_ja", ""), new("body_ja", "本文"), new("category", "nonsense")]);

        Assert.Equal(HttpStatusCode.Redirect, now);
        Assert.Equal(HttpStatusCode.Redirect, scheduled);
        Assert.Equal(HttpStatusCode.BadRequest, bad);
        Assert.Contains("data-error=\"invalid\"", badHtml, StringComparison.Ordinal);
        var (_, feed, _) = await resident.GetAsync("/");
        Assert.Contains("湊町赤井 集会所の臨時休館", feed, StringComparison.Ordinal);
        Assert.DoesNotContain("湊町赤井 来週のお知らせ", feed, StringComparison.Ordinal);
        using var elsewhere = await portal.ResidentAsync();
        await elsewhere.PostFormAsync("/portal/profile", "/portal/profile", [new("district", "一箕町大字八幡")]);
        Assert.DoesNotContain("湊町赤井 集会所の臨時休館", (await elsewhere.GetAsync("/")).Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_alert_issued_on_another_node_sharing_the_database_reaches_this_nodes_open_pages()
    {
        using var listener = new HttpClient { BaseAddress = portal.Server.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        using var response = await listener.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/portal/events"), HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        Assert.Equal("retry: 3000", await reader.ReadLineAsync(timeout.Token));
        await Task.Delay(2500, timeout.Token); // let the watcher see the current state first

        // "Another node": a second store on the same database file, which this node's broadcaster never hears from.
        var other = new Machi.Portal.Storage.SqlitePortalStore(Path.Combine(portal.Server.DataDirectory, "machi.db"));
        await other.AddAlertAsync(new Machi.Portal.Storage.Alert(0, "info", new("別ノードからの試験情報", "From another node"), new("試験", "Test"), [],
            DateTimeOffset.UtcNow, "test", null), CancellationToken.None);

        var seen = false;
        while (!seen && await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            seen = line.Contains("別ノードからの試験情報", StringComparison.Ordinal);
        }

        Assert.True(seen, "an alert from another node did not reach the event stream");
        var id = (await other.ActiveAlertsAsync(CancellationToken.None)).Single(a => a.Title.Ja == "別ノードからの試験情報").Id;
        await other.CancelAlertAsync(id, DateTimeOffset.UtcNow, CancellationToken.None);
    }

    [Fact]
    public async Task An_emergency_alert_reaches_an_open_event_stream_within_seconds_and_shows_on_every_page()
    {
        using var staff = await portal.StaffAsync();
        using var listener = new HttpClient { BaseAddress = portal.Server.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/portal/events");
        using var response = await listener.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));

        var (issued, _, _) = await staff.PostFormAsync("/portal/staff/alerts", "/portal/staff/alerts",
            [new("level", "evacuate"), new("title_ja", "大川 洪水避難指示（SSE試験）"), new("title_en", "Okawa flood evacuation order (SSE test)"),
             new("body_ja", "直ちに指定緊急避難場所へ避難してください。"), new("districts", "大戸町大字大川")]);
        Assert.Equal(HttpStatusCode.Redirect, issued);

        var seen = false;
        while (!seen && await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            seen = line.Contains("大川 洪水避難指示（SSE試験）", StringComparison.Ordinal);
        }

        Assert.True(seen, "the alert did not arrive on the event stream");
        using var anonymous = new PortalClient(portal.Server.BaseAddress);
        var (_, procedures, _) = await anonymous.GetAsync("/portal/procedures");
        Assert.Contains("大川 洪水避難指示（SSE試験）", procedures, StringComparison.Ordinal);
        Assert.Contains("大戸町大字大川", procedures, StringComparison.Ordinal);

        // Cancelled, it leaves every page.
        var (_, alertsPage, _) = await staff.GetAsync("/portal/staff/alerts");
        var id = System.Text.RegularExpressions.Regex.Match(alertsPage, "data-staff-alert=\"(\\d+)\"").Groups[1].Value;
        await staff.PostFormAsync("/portal/staff/alerts", $"/portal/staff/alerts/{id}/cancel", []);
        Assert.DoesNotContain("大川 洪水避難指示（SSE試験）", (await anonymous.GetAsync("/")).Html, StringComparison.Ordinal);
    }
}
