using System.Text;
using Machi.Portal.Storage;
using Machi.Portal.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Machi.Portal.Feed;

/// <summary>The home page (the personalised feed and the service tiles) and a notice's own page.</summary>
internal static class HomePages
{
    public static IEndpointRouteBuilder MapHomePages(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", Home).ExcludeFromDescription();
        app.MapGet("/portal/notices/{id:long}", NoticePage).ExcludeFromDescription();
        return app;
    }

    /// <summary>A service and whether it runs yet: tiles say so honestly.</summary>
    private sealed record Tile(string Key, string? Href, bool Available);

    private static readonly Tile[] Tiles =
    [
        new("procedures", "/portal/procedures", true),
        new("notices", "#feed", true),
        new("snow", null, false),
        new("disaster", null, false),
        new("water", null, false),
        new("power", null, false),
        new("town", null, false),
        new("care", null, false),
        new("health", null, false),
        new("consult", null, false),
        new("coin", null, false),
        new("opendata", null, false),
        new("developers", "/docs", true),
    ];

    private static async Task<IResult> Home(HttpContext http, TimeProvider time)
    {
        var page = await PortalPage.ForAsync(http);
        var profile = page.Viewer.IsSignedIn ? await page.Store.GetProfileAsync(page.Viewer.UserId!, page.Aborted) : null;
        var feed = Targeting.Feed(await page.Store.PublishedNoticesAsync(time.GetUtcNow(), page.Aborted), profile);
        var body = new StringBuilder();
        body.Append("<p class=\"lead\">").Append(PortalPage.E(page.T("home_lead"))).Append("</p>");

        body.Append("<section id=\"feed\" aria-labelledby=\"feed-title\"><h2 id=\"feed-title\">")
            .Append(PortalPage.E(page.T(profile is null ? "feed_all" : "feed_personal"))).Append("</h2>");
        body.Append("<p class=\"hint\" data-feed=\"").Append(profile is null ? "all" : "personal").Append("\">");
        if (profile is null)
        {
            body.Append(PortalPage.E(page.T("feed_no_profile"))).Append(' ')
                .Append(page.Viewer.IsSignedIn
                    ? $"<a href=\"/portal/profile\">{PortalPage.E(page.T("feed_set_profile"))}</a>"
                    : $"<a href=\"{PortalPage.E(page.LoginUrl)}\">{PortalPage.E(page.T("feed_login_for_profile"))}</a>");
        }
        else
        {
            body.Append(PortalPage.E(page.T("feed_profile_used"))).Append(" <a href=\"/portal/profile\">").Append(PortalPage.E(page.T("feed_change_profile"))).Append("</a>");
        }

        body.Append("</p>");
        if (feed.Count == 0)
        {
            body.Append("<p>").Append(PortalPage.E(page.T("feed_empty"))).Append("</p>");
        }
        else
        {
            body.Append("<ul class=\"cards\">");
            foreach (var (notice, forYou) in feed)
            {
                body.Append("<li class=\"card\" data-notice-id=\"").Append(notice.Id).Append("\">");
                if (forYou)
                {
                    body.Append("<span class=\"badge\" data-for-you>").Append(PortalPage.E(page.T("for_you"))).Append("</span> ");
                }

                body.Append("<span class=\"category\">").Append(PortalPage.E(page.T("category_" + notice.Category))).Append("</span>")
                    .Append("<h3><a href=\"/portal/notices/").Append(notice.Id).Append("\">").Append(PortalPage.E(notice.Title.In(page.Lang))).Append("</a></h3>")
                    .Append("<p class=\"small\"><time datetime=\"").Append(notice.PublishAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture)).Append("\">")
                    .Append(PortalPage.E(PortalPage.When(notice.PublishAt))).Append("</time></p></li>");
            }

            body.Append("</ul>");
        }

        body.Append("</section>");

        body.Append("<section aria-labelledby=\"services-title\"><h2 id=\"services-title\">").Append(PortalPage.E(page.T("services"))).Append("</h2><ul class=\"tiles\">");
        foreach (var tile in Tiles)
        {
            body.Append("<li class=\"tile").Append(tile.Available ? "" : " soon").Append("\" data-tile=\"").Append(tile.Key).Append("\">");
            var name = PortalPage.E(page.T("tile_" + tile.Key));
            body.Append(tile.Href is null ? $"<h3>{name}</h3>" : $"<h3><a href=\"{tile.Href}\">{name}</a></h3>");
            body.Append("<p>").Append(PortalPage.E(page.T("tile_" + tile.Key + "_about"))).Append("</p>");
            if (!tile.Available)
            {
                body.Append("<p class=\"soon-label\">").Append(PortalPage.E(page.T("tile_soon"))).Append("</p>");
            }

            body.Append("</li>");
        }

        body.Append("</ul></section>");
        return await page.RenderAsync("home_title", body.ToString());
    }

    private static async Task<IResult> NoticePage(HttpContext http, long id, TimeProvider time)
    {
        var page = await PortalPage.ForAsync(http);
        var notice = await page.Store.GetNoticeAsync(id, page.Aborted);
        var now = time.GetUtcNow();
        var visible = notice is not null && (page.Viewer.IsStaff || (notice.PublishAt <= now && (notice.ExpiresAt is null || notice.ExpiresAt > now)));
        if (!visible)
        {
            return await page.NotFoundAsync();
        }

        var body = new StringBuilder()
            .Append("<p class=\"small\"><span class=\"category\">").Append(PortalPage.E(page.T("category_" + notice!.Category))).Append("</span> ")
            .Append(PortalPage.E(PortalPage.When(notice.PublishAt))).Append("</p>")
            .Append("<div class=\"prose\">");
        foreach (var paragraph in notice.Body.In(page.Lang).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            body.Append("<p>").Append(PortalPage.E(paragraph)).Append("</p>");
        }

        body.Append("</div>");
        if (!notice.Audience.IsEveryone)
        {
            body.Append("<p class=\"small\">").Append(PortalPage.E(page.T("notice_for"))).Append(' ').Append(PortalPage.E(Describe(page, notice.Audience))).Append("</p>");
        }

        body.Append("<p><a href=\"/\">").Append(PortalPage.E(page.T("back_home"))).Append("</a></p>");
        return await page.RenderRawAsync(notice.Title.In(page.Lang), body.ToString());
    }

    /// <summary>Who a notice is for, in words.</summary>
    public static string Describe(PortalPage page, Audience audience)
    {
        var parts = new List<string>();
        if (audience.Districts.Count > 0)
        {
            parts.Add(string.Join("、", audience.Districts));
        }

        parts.AddRange(audience.AgeGroups.Select(a => page.T("age_" + a)));
        parts.AddRange(audience.Household.Select(h => page.T("household_" + h)));
        parts.AddRange(audience.Interests.Select(i => page.T("interest_" + i)));
        return parts.Count == 0 ? page.T("audience_everyone") : string.Join(" / ", parts);
    }
}
