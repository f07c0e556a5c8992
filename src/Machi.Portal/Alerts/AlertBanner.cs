using System.Text;
using Machi.Portal.Storage;
using Machi.Portal.Web;

namespace Machi.Portal.Alerts;

/// <summary>The emergency banner: every active alert, the newest first, on every portal page.</summary>
internal static class AlertBanner
{
    public static IReadOnlyList<string> Levels { get; } = ["emergency", "evacuate", "elderly", "info"];

    /// <summary>The banner's HTML in <paramref name="lang"/>; <paramref name="district"/> (the viewer's, if told) is marked.</summary>
    public static string Render(IReadOnlyList<Alert> alerts, string lang, string? district)
    {
        var html = new StringBuilder();
        foreach (var alert in alerts)
        {
            var mine = district is not null && alert.Districts.Contains(district, StringComparer.Ordinal);
            html.Append("<section class=\"alert alert-").Append(PortalPage.E(alert.Level)).Append("\" role=\"alert\" data-alert=\"")
                .Append(alert.Id).Append("\" aria-labelledby=\"alert-").Append(alert.Id).Append("\">")
                .Append("<h2 id=\"alert-").Append(alert.Id).Append("\"><span class=\"level\">")
                .Append(PortalPage.E(Texts.Get("alert_level_" + alert.Level, lang))).Append("</span> ")
                .Append(PortalPage.E(alert.Title.In(lang))).Append("</h2>");
            if (mine)
            {
                html.Append("<p class=\"mine\" data-alert-mine><strong>").Append(PortalPage.E(Texts.Get("alert_your_district", lang))).Append("</strong></p>");
            }

            html.Append("<p>").Append(PortalPage.E(alert.Body.In(lang))).Append("</p>");
            html.Append("<p class=\"small\">").Append(PortalPage.E(Texts.Get("alert_districts", lang))).Append(' ')
                .Append(PortalPage.E(alert.Districts.Count == 0 ? Texts.Get("alert_whole_city", lang) : string.Join("、", alert.Districts)))
                .Append(" · ").Append(PortalPage.E(PortalPage.When(alert.IssuedAt))).Append("</p></section>");
        }

        return html.ToString();
    }
}
