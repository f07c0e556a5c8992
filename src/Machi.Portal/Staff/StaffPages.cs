using System.Globalization;
using System.Text;
using Machi.Portal.Alerts;
using Machi.Portal.Feed;
using Machi.Portal.Procedures;
using Machi.Portal.Storage;
using Machi.Portal.Web;
using Machi.Trust.Mail;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Portal.Staff;

/// <summary>
/// The staff back office (職員向け): notices with targeting and a schedule, emergency alerts, the applications queue
/// and procedure definitions. Every page refuses anyone but staff (anonymous is sent to sign in, others get 403).
/// </summary>
internal static class StaffPages
{
    public static IEndpointRouteBuilder MapStaffPages(this IEndpointRouteBuilder app)
    {
        var staff = app.MapGroup("/portal/staff").ExcludeFromDescription();
        staff.MapGet("", (Delegate)Home);
        staff.MapGet("/notices", Notices);
        staff.MapPost("/notices", PublishNotice);
        staff.MapPost("/notices/{id:long}/delete", DeleteNotice);
        staff.MapGet("/alerts", (Delegate)Alerts);
        staff.MapPost("/alerts", IssueAlert);
        staff.MapPost("/alerts/{id:long}/cancel", CancelAlert);
        staff.MapGet("/queue", (Delegate)Queue);
        staff.MapGet("/applications/{id:long}", Application);
        staff.MapPost("/applications/{id:long}/status", ChangeStatus);
        staff.MapGet("/procedures", (Delegate)Procedures);
        staff.MapPost("/procedures", SaveProcedure);
        return app;
    }

    public static IReadOnlyList<string> Categories { get; } = ["general", "disaster", "snow", "health", "childcare", "events", "garbage", "transport", "tax"];

    private static async Task<PortalPage?> StaffPageAsync(HttpContext http)
    {
        var page = await PortalPage.ForAsync(http);
        return page.Viewer.IsStaff ? page : null;
    }

    private static async Task<IResult> Refuse(HttpContext http) => await (await PortalPage.ForAsync(http)).RefuseAsync();

    private static async Task<IResult> Home(HttpContext http)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        var open = await page.Store.QueueAsync([SubmissionStatus.Submitted, SubmissionStatus.InReview], page.Aborted);
        var active = await page.Store.ActiveAlertsAsync(page.Aborted);
        var body = new StringBuilder("<ul class=\"tiles\">")
            .Append(Tile(page, "/portal/staff/queue", "staff_queue", page.T("staff_queue_count", open.Count)))
            .Append(Tile(page, "/portal/staff/notices", "staff_notices", page.T("staff_notices_about")))
            .Append(Tile(page, "/portal/staff/alerts", "staff_alerts", page.T("staff_alerts_count", active.Count)))
            .Append(Tile(page, "/portal/staff/procedures", "staff_procedures", page.T("staff_procedures_about")))
            .Append("</ul>");
        return await page.RenderAsync("staff_title", body.ToString());
    }

    private static string Tile(PortalPage page, string href, string key, string about) =>
        $"<li class=\"tile\"><h2><a href=\"{href}\">{PortalPage.E(page.T(key))}</a></h2><p>{PortalPage.E(about)}</p></li>";

    // ---- notices -------------------------------------------------------------------------------------------------

    private static async Task<IResult> Notices(HttpContext http, TimeProvider time)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        return await NoticesPageAsync(page, time, http.Request.Query["done"] == "published" ? page.Notice("notice_published") : "", null, null);
    }

    private static async Task<IResult> NoticesPageAsync(PortalPage page, TimeProvider time, string message, IFormCollection? form, List<string>? errors)
    {
        var now = time.GetUtcNow();
        var body = new StringBuilder(message);
        if (errors is { Count: > 0 })
        {
            body.Append("<div class=\"error\" role=\"alert\" data-error=\"invalid\"><ul>").Append(string.Concat(errors.Select(e => $"<li>{PortalPage.E(e)}</li>"))).Append("</ul></div>");
        }

        string V(string name) => form?[name].ToString() ?? "";
        var fields = new StringBuilder()
            .Append(Fields.Input(page, "title_ja", "text", page.T("f_title_ja"), V("title_ja"), required: true, extra: "maxlength=\"200\""))
            .Append(Fields.Input(page, "title_en", "text", page.T("f_title_en"), V("title_en"), extra: "maxlength=\"200\""))
            .Append(Fields.TextArea(page, "body_ja", page.T("f_body_ja"), V("body_ja"), required: true, maxLength: 5000))
            .Append(Fields.TextArea(page, "body_en", page.T("f_body_en"), V("body_en"), maxLength: 5000))
            .Append(Fields.Select(page, "category", page.T("f_category"), Categories.Select(c => (c, page.T("category_" + c))), V("category"), required: true))
            .Append(Fields.Select(page, "districts", page.T("f_target_districts"), Fields.Districts(), null, help: page.T("f_target_help"),
                multiple: true, selectedMany: form?["districts"].Select(v => v ?? "").ToList()))
            .Append(Fields.Choices("age_groups", page.T("f_target_age"), Targeting.AgeGroups.Select(a => (a, page.T("age_" + a))), form?["age_groups"].Select(v => v ?? "").ToList() ?? []))
            .Append(Fields.Choices("household", page.T("f_target_household"), Targeting.Household.Select(h => (h, page.T("household_" + h))), form?["household"].Select(v => v ?? "").ToList() ?? []))
            .Append(Fields.Choices("interests", page.T("f_target_interests"), Targeting.Interests.Select(i => (i, page.T("interest_" + i))), form?["interests"].Select(v => v ?? "").ToList() ?? []))
            .Append(Fields.Input(page, "publish_at", "datetime-local", page.T("f_publish_at"), V("publish_at"), help: page.T("f_publish_help")))
            .Append(Fields.Input(page, "expires_at", "datetime-local", page.T("f_expires_at"), V("expires_at"), help: page.T("f_expires_help")));
        body.Append("<h2>").Append(PortalPage.E(page.T("notice_new"))).Append("</h2>").Append(page.Form("/portal/staff/notices", fields.ToString(), "publish"));

        body.Append("<h2>").Append(PortalPage.E(page.T("notice_list"))).Append("</h2><ul class=\"cards\">");
        foreach (var notice in await page.Store.AllNoticesAsync(page.Aborted))
        {
            var state = notice.PublishAt > now ? "scheduled" : notice.ExpiresAt is { } x && x <= now ? "expired" : "published";
            body.Append("<li class=\"card\" data-staff-notice=\"").Append(notice.Id).Append("\"><h3><a href=\"/portal/notices/").Append(notice.Id).Append("\">")
                .Append(PortalPage.E(notice.Title.In(page.Lang))).Append("</a></h3><p class=\"small\">").Append(PortalPage.E(page.T("notice_state_" + state)))
                .Append(" · ").Append(PortalPage.E(PortalPage.When(notice.PublishAt)))
                .Append(notice.ExpiresAt is { } e ? " – " + PortalPage.E(PortalPage.When(e)) : "")
                .Append(" · ").Append(PortalPage.E(HomePages.Describe(page, notice.Audience))).Append("</p>")
                .Append(page.Form($"/portal/staff/notices/{notice.Id}/delete", "", "delete", buttonClass: "secondary small")).Append("</li>");
        }

        body.Append("</ul>");
        return await page.RenderAsync("staff_notices", body.ToString(), errors is { Count: > 0 } ? StatusCodes.Status400BadRequest : StatusCodes.Status200OK);
    }

    private static async Task<IResult> PublishNotice(HttpContext http, TimeProvider time)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        if (await page.ReadFormAsync() is not { } form)
        {
            return await page.FormExpiredAsync();
        }

        var errors = new List<string>();
        var titleJa = form["title_ja"].ToString().Trim();
        var bodyJa = form["body_ja"].ToString().Trim();
        var category = form["category"].ToString();
        if (titleJa.Length == 0 || titleJa.Length > 200)
        {
            errors.Add(page.T("f_title_ja") + ": " + page.T("v_required"));
        }

        if (bodyJa.Length == 0 || bodyJa.Length > 5000)
        {
            errors.Add(page.T("f_body_ja") + ": " + page.T("v_required"));
        }

        if (!Categories.Contains(category))
        {
            errors.Add(page.T("f_category") + ": " + page.T("v_not_option"));
        }

        var districts = form["districts"].Select(v => v ?? "").Where(v => v.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        if (districts.Any(d => !Towns.IsKnown(d)))
        {
            errors.Add(page.T("f_target_districts") + ": " + page.T("v_not_district"));
        }

        var now = time.GetUtcNow();
        var publishAt = LocalTime(form["publish_at"].ToString(), out var badPublish) ?? now;
        var expiresAt = LocalTime(form["expires_at"].ToString(), out var badExpiry);
        if (badPublish || badExpiry)
        {
            errors.Add(page.T("v_not_date"));
        }
        else if (expiresAt is { } x && x <= publishAt)
        {
            errors.Add(page.T("f_expires_at") + ": " + page.T("v_expiry_before_publish"));
        }

        if (errors.Count > 0)
        {
            return await NoticesPageAsync(page, time, "", form, errors);
        }

        var audience = new Audience(districts,
            Targeting.Known(form["age_groups"].Select(v => v ?? ""), Targeting.AgeGroups),
            Targeting.Known(form["household"].Select(v => v ?? ""), Targeting.Household),
            Targeting.Known(form["interests"].Select(v => v ?? ""), Targeting.Interests));
        await page.Store.AddNoticeAsync(new Notice(0, new Bilingual(titleJa, form["title_en"].ToString().Trim()),
            new Bilingual(bodyJa, form["body_en"].ToString().Trim()), category, audience, publishAt, expiresAt, page.Viewer.Email ?? "", now), page.Aborted);
        return Results.Redirect("/portal/staff/notices?done=published");
    }

    /// <summary>A datetime-local value, read as the city's time; empty is null.</summary>
    private static DateTimeOffset? LocalTime(string value, out bool invalid)
    {
        invalid = false;
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        string[] formats = ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss"];
        if (DateTime.TryParseExact(value.Trim(), formats, CultureInfo.InvariantCulture, DateTimeStyles.None, out var local))
        {
            return new DateTimeOffset(DateTime.SpecifyKind(local, DateTimeKind.Unspecified), City.Offset);
        }

        invalid = true;
        return null;
    }

    private static async Task<IResult> DeleteNotice(HttpContext http, long id)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        if (await page.ReadFormAsync() is null)
        {
            return await page.FormExpiredAsync();
        }

        await page.Store.DeleteNoticeAsync(id, page.Aborted);
        return Results.Redirect("/portal/staff/notices");
    }

    // ---- alerts --------------------------------------------------------------------------------------------------

    private static async Task<IResult> Alerts(HttpContext http)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        return await AlertsPageAsync(page, http.Request.Query["done"].ToString() switch
        {
            "issued" => page.Notice("alert_issued"),
            "cancelled" => page.Notice("alert_cancelled"),
            _ => "",
        }, null, null);
    }

    private static async Task<IResult> AlertsPageAsync(PortalPage page, string message, IFormCollection? form, List<string>? errors)
    {
        var body = new StringBuilder(message);
        if (errors is { Count: > 0 })
        {
            body.Append("<div class=\"error\" role=\"alert\" data-error=\"invalid\"><ul>").Append(string.Concat(errors.Select(e => $"<li>{PortalPage.E(e)}</li>"))).Append("</ul></div>");
        }

        string V(string name) => form?[name].ToString() ?? "";
        var fields = new StringBuilder()
            .Append(Fields.Select(page, "level", page.T("f_alert_level"), AlertBanner.Levels.Select(l => (l, page.T("alert_level_" + l))), V("level"), required: true))
            .Append(Fields.Input(page, "title_ja", "text", page.T("f_title_ja"), V("title_ja"), required: true, extra: "maxlength=\"200\""))
            .Append(Fields.Input(page, "title_en", "text", page.T("f_title_en"), V("title_en"), extra: "maxlength=\"200\""))
            .Append(Fields.TextArea(page, "body_ja", page.T("f_body_ja"), V("body_ja"), required: true, maxLength: 2000))
            .Append(Fields.TextArea(page, "body_en", page.T("f_body_en"), V("body_en"), maxLength: 2000))
            .Append(Fields.Select(page, "districts", page.T("f_alert_districts"), Fields.Districts(), null, help: page.T("f_alert_districts_help"),
                multiple: true, selectedMany: form?["districts"].Select(v => v ?? "").ToList()));
        body.Append("<h2>").Append(PortalPage.E(page.T("alert_new"))).Append("</h2>").Append(page.Form("/portal/staff/alerts", fields.ToString(), "issue_alert", buttonClass: "danger"));

        body.Append("<h2>").Append(PortalPage.E(page.T("alert_list"))).Append("</h2><ul class=\"cards\">");
        foreach (var alert in await page.Store.RecentAlertsAsync(50, page.Aborted))
        {
            body.Append("<li class=\"card\" data-staff-alert=\"").Append(alert.Id).Append("\"><h3>").Append(PortalPage.E(page.T("alert_level_" + alert.Level))).Append(' ')
                .Append(PortalPage.E(alert.Title.In(page.Lang))).Append("</h3><p class=\"small\">").Append(PortalPage.E(PortalPage.When(alert.IssuedAt)))
                .Append(" · ").Append(PortalPage.E(alert.Districts.Count == 0 ? page.T("alert_whole_city") : string.Join("、", alert.Districts))).Append("</p>");
            body.Append(alert.CancelledAt is { } c
                ? $"<p class=\"small\">{PortalPage.E(page.T("alert_cancelled_at"))} {PortalPage.E(PortalPage.When(c))}</p>"
                : page.Form($"/portal/staff/alerts/{alert.Id}/cancel", "", "cancel_alert", buttonClass: "secondary small"));
            body.Append("</li>");
        }

        body.Append("</ul>");
        return await page.RenderAsync("staff_alerts", body.ToString(), errors is { Count: > 0 } ? StatusCodes.Status400BadRequest : StatusCodes.Status200OK);
    }

    private static async Task<IResult> IssueAlert(HttpContext http, TimeProvider time, AlertBroadcaster broadcaster)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        if (await page.ReadFormAsync() is not { } form)
        {
            return await page.FormExpiredAsync();
        }

        var errors = new List<string>();
        var level = form["level"].ToString();
        var titleJa = form["title_ja"].ToString().Trim();
        var bodyJa = form["body_ja"].ToString().Trim();
        if (!AlertBanner.Levels.Contains(level))
        {
            errors.Add(page.T("f_alert_level") + ": " + page.T("v_not_option"));
        }

        if (titleJa.Length is 0 or > 200)
        {
            errors.Add(page.T("f_title_ja") + ": " + page.T("v_required"));
        }

        if (bodyJa.Length is 0 or > 2000)
        {
            errors.Add(page.T("f_body_ja") + ": " + page.T("v_required"));
        }

        var districts = form["districts"].Select(v => v ?? "").Where(v => v.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        if (districts.Any(d => !Towns.IsKnown(d)))
        {
            errors.Add(page.T("f_alert_districts") + ": " + page.T("v_not_district"));
        }

        if (errors.Count > 0)
        {
            return await AlertsPageAsync(page, "", form, errors);
        }

        await page.Store.AddAlertAsync(new Alert(0, level, new Bilingual(titleJa, form["title_en"].ToString().Trim()),
            new Bilingual(bodyJa, form["body_en"].ToString().Trim()), districts, time.GetUtcNow(), page.Viewer.Email ?? "", null), page.Aborted);
        broadcaster.Changed();
        return Results.Redirect("/portal/staff/alerts?done=issued");
    }

    private static async Task<IResult> CancelAlert(HttpContext http, long id, TimeProvider time, AlertBroadcaster broadcaster)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        if (await page.ReadFormAsync() is null)
        {
            return await page.FormExpiredAsync();
        }

        await page.Store.CancelAlertAsync(id, time.GetUtcNow(), page.Aborted);
        broadcaster.Changed();
        return Results.Redirect("/portal/staff/alerts?done=cancelled");
    }

    // ---- applications --------------------------------------------------------------------------------------------

    private static async Task<IResult> Queue(HttpContext http)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        var show = http.Request.Query["status"].ToString();
        IReadOnlyList<string> statuses = show == "all" ? [] : SubmissionStatus.All.Contains(show) ? [show] : [SubmissionStatus.Submitted, SubmissionStatus.InReview];
        var body = new StringBuilder("<nav class=\"filters\" aria-label=\"").Append(PortalPage.E(page.T("filter"))).Append("\"><ul>");
        foreach (var (value, key) in new[] { ("", "queue_open"), (SubmissionStatus.Completed, "status_completed"), (SubmissionStatus.Returned, "status_returned"), ("all", "queue_all") })
        {
            body.Append("<li><a href=\"/portal/staff/queue").Append(value.Length == 0 ? "" : "?status=" + value).Append('"')
                .Append(value == show ? " aria-current=\"page\"" : "").Append('>').Append(PortalPage.E(page.T(key))).Append("</a></li>");
        }

        body.Append("</ul></nav>");
        var queue = await page.Store.QueueAsync(statuses, page.Aborted);
        if (queue.Count == 0)
        {
            body.Append("<p>").Append(PortalPage.E(page.T("queue_empty"))).Append("</p>");
        }
        else
        {
            body.Append("<div class=\"scroll\"><table><caption>").Append(PortalPage.E(page.T("staff_queue"))).Append("</caption><thead><tr><th scope=\"col\">")
                .Append(PortalPage.E(page.T("number"))).Append("</th><th scope=\"col\">").Append(PortalPage.E(page.T("procedure"))).Append("</th><th scope=\"col\">")
                .Append(PortalPage.E(page.T("department"))).Append("</th><th scope=\"col\">").Append(PortalPage.E(page.T("submitted_at"))).Append("</th><th scope=\"col\">")
                .Append(PortalPage.E(page.T("current_status"))).Append("</th></tr></thead><tbody>");
            foreach (var s in queue)
            {
                var definition = await ProcedureForm.LoadAsync(page.Store, s.ProcedureCode, false, page.Aborted);
                body.Append("<tr data-queue-item=\"").Append(s.Id).Append("\"><td><a href=\"/portal/staff/applications/").Append(s.Id).Append("\">").Append(s.Id)
                    .Append("</a></td><td>").Append(PortalPage.E(definition?.Title.In(page.Lang) ?? s.ProcedureCode)).Append("</td><td>")
                    .Append(PortalPage.E(definition?.Department.In(page.Lang))).Append("</td><td>").Append(PortalPage.E(PortalPage.When(s.SubmittedAt)))
                    .Append("</td><td>").Append(page.Status(s.Status)).Append("</td></tr>");
            }

            body.Append("</tbody></table></div>");
        }

        return await page.RenderAsync("staff_queue", body.ToString());
    }

    private static async Task<IResult> Application(HttpContext http, long id)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        return await ApplicationPageAsync(page, id, http.Request.Query["done"] == "changed" ? page.Notice("status_changed") : "", null);
    }

    private static async Task<IResult> ApplicationPageAsync(PortalPage page, long id, string message, string? error)
    {
        if (await page.Store.GetSubmissionAsync(id, page.Aborted) is not { } submission)
        {
            return await page.NotFoundAsync();
        }

        var definition = await ProcedureForm.LoadAsync(page.Store, submission.ProcedureCode, false, page.Aborted);
        var body = new StringBuilder(message);
        if (error is not null)
        {
            body.Append("<p class=\"error\" role=\"alert\" data-error=\"").Append(PortalPage.E(error)).Append("\">").Append(PortalPage.E(page.T(error))).Append("</p>");
        }

        body.Append("<p>").Append(PortalPage.E(page.T("application_number", submission.Id))).Append(" · ").Append(PortalPage.E(submission.UserEmail)).Append("</p>")
            .Append("<p>").Append(PortalPage.E(page.T("current_status"))).Append(": ").Append(page.Status(submission.Status)).Append("</p>");
        var next = SubmissionStatus.Next(submission.Status);
        if (next.Count > 0)
        {
            var fields = Fields.Select(page, "status", page.T("f_new_status"), next.Select(s => (s, page.T("status_" + s))), null, required: true,
                    emptyText: page.T("choose"))
                + Fields.TextArea(page, "comment", page.T("f_comment"), null, help: page.T("f_comment_help"), maxLength: 2000)
                + $"<input type=\"hidden\" name=\"expected\" value=\"{PortalPage.E(submission.Status)}\">";
            body.Append("<h2>").Append(PortalPage.E(page.T("act"))).Append("</h2>").Append(page.Form($"/portal/staff/applications/{id}/status", fields, "change_status"));
        }

        body.Append("<h2>").Append(PortalPage.E(page.T("answers"))).Append("</h2>").Append(ProcedureForm.Answers(page, definition, submission))
            .Append("<h2>").Append(PortalPage.E(page.T("attachments"))).Append("</h2>").Append(ProcedureForm.Attachments(page, await page.Store.AttachmentsAsync(id, page.Aborted)))
            .Append("<h2>").Append(PortalPage.E(page.T("history"))).Append("</h2>").Append(ProcedureForm.History(page, await page.Store.HistoryAsync(id, page.Aborted), showActor: true))
            .Append("<p><a href=\"/portal/staff/queue\">").Append(PortalPage.E(page.T("back_queue"))).Append("</a></p>");
        return await page.RenderRawAsync((definition?.Title.In(page.Lang) ?? submission.ProcedureCode) + " — " + page.T("application_number", id), body.ToString(),
            error is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    private static async Task<IResult> ChangeStatus(HttpContext http, long id, TimeProvider time, IMailSender mail, IOptions<PortalOptions> options, ILoggerFactory logs)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        if (await page.ReadFormAsync() is not { } form)
        {
            return await page.FormExpiredAsync();
        }

        if (await page.Store.GetSubmissionAsync(id, page.Aborted) is not { } submission)
        {
            return await page.NotFoundAsync();
        }

        var status = form["status"].ToString();
        var comment = form["comment"].ToString().Trim();
        var expected = form["expected"].ToString();
        if (!SubmissionStatus.Next(expected).Contains(status))
        {
            return await ApplicationPageAsync(page, id, "", "error_status_not_allowed");
        }

        if (status == SubmissionStatus.Returned && comment.Length == 0)
        {
            return await ApplicationPageAsync(page, id, "", "error_comment_required");
        }

        if (comment.Length > 2000)
        {
            comment = comment[..2000];
        }

        var changed = await page.Store.ChangeStatusAsync(
            new StatusChange(id, status, comment.Length == 0 ? null : comment, page.Viewer.Email ?? "", time.GetUtcNow()), expected, page.Aborted);
        if (!changed)
        {
            return await ApplicationPageAsync(page, id, "", "error_status_changed_meanwhile");
        }

        if (options.Value.MailStatusChanges && submission.UserEmail.Length > 0)
        {
            await MailAsync(mail, submission, status, comment, logs);
        }

        return Results.Redirect($"/portal/staff/applications/{id}?done=changed");
    }

    /// <summary>Tells the resident by e-mail too (both languages: the portal does not know which one they read).</summary>
    private static async Task MailAsync(IMailSender mail, Submission submission, string status, string comment, ILoggerFactory logs)
    {
        var text = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"申請番号 {submission.Id} の状況が「{Texts.Get("status_" + status, "ja")}」になりました。\n")
            .Append(comment.Length > 0 ? $"職員からのコメント: {comment}\n" : "")
            .Append(CultureInfo.InvariantCulture, $"詳しくは会津若松+の「申請状況」をご覧ください: /portal/applications/{submission.Id}\n\n")
            .Append(CultureInfo.InvariantCulture, $"Application {submission.Id} is now \"{Texts.Get("status_" + status, "en")}\".\n")
            .Append(comment.Length > 0 ? $"Comment from the city: {comment}\n" : "")
            .Append(CultureInfo.InvariantCulture, $"See \"My applications\" in the portal: /portal/applications/{submission.Id}\n");
        try
        {
            await mail.SendAsync(new MailMessage(submission.UserEmail,
                string.Create(CultureInfo.InvariantCulture, $"[会津若松+] 申請 {submission.Id}: {Texts.Get("status_" + status, "ja")} / {Texts.Get("status_" + status, "en")}"),
                text.ToString()), CancellationToken.None);
        }
        catch (IOException e)
        {
            // The status change is kept and shown in the portal; a mail that could not go is logged, not fatal.
            logs.CreateLogger("Machi.Portal.Staff").LogWarning(e, "Could not mail the status of application {Id}", submission.Id);
        }
    }

    // ---- procedures ----------------------------------------------------------------------------------------------

    private static async Task<IResult> Procedures(HttpContext http)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        var code = http.Request.Query["code"].ToString();
        var editing = code.Length > 0 ? await page.Store.GetProcedureAsync(code, page.Aborted) : null;
        return await ProceduresPageAsync(page, http.Request.Query["done"] == "saved" ? page.Notice("procedure_saved") : "",
            editing?.Definition ?? SeedProcedures.All[0].ToJson().Replace("\"sodai-gomi\"", "\"new-procedure\"", StringComparison.Ordinal), editing?.Active ?? true, null);
    }

    private static async Task<IResult> ProceduresPageAsync(PortalPage page, string message, string json, bool active, List<string>? errors)
    {
        var body = new StringBuilder(message);
        if (errors is { Count: > 0 })
        {
            body.Append("<div class=\"error\" role=\"alert\" data-error=\"invalid_definition\"><p>").Append(PortalPage.E(page.T("definition_invalid")))
                .Append("</p><ul>").Append(string.Concat(errors.Select(e => $"<li>{PortalPage.E(e)}</li>"))).Append("</ul></div>");
        }

        body.Append("<ul class=\"cards\">");
        foreach (var p in await page.Store.ProceduresAsync(activeOnly: false, page.Aborted))
        {
            var title = ProcedureDefinition.Parse(p.Definition, out _)?.Title.In(page.Lang) ?? p.Code;
            body.Append("<li class=\"card\"><h2><a href=\"/portal/staff/procedures?code=").Append(Uri.EscapeDataString(p.Code)).Append("\">").Append(PortalPage.E(title))
                .Append("</a></h2><p class=\"small\">").Append(PortalPage.E(p.Code)).Append(" · ").Append(PortalPage.E(page.T(p.Active ? "active" : "inactive"))).Append("</p></li>");
        }

        body.Append("</ul><h2>").Append(PortalPage.E(page.T("definition_edit"))).Append("</h2><p>").Append(PortalPage.E(page.T("definition_help"))).Append("</p>");
        var fields = Fields.TextArea(page, "definition", page.T("f_definition"), json, required: true, rows: 24)
            + Fields.Choices("active", page.T("f_active"), [("yes", page.T("active"))], active ? ["yes"] : []);
        body.Append(page.Form("/portal/staff/procedures", fields, "save_procedure"));
        return await page.RenderAsync("staff_procedures", body.ToString(), errors is { Count: > 0 } ? StatusCodes.Status400BadRequest : StatusCodes.Status200OK);
    }

    private static async Task<IResult> SaveProcedure(HttpContext http, TimeProvider time)
    {
        if (await StaffPageAsync(http) is not { } page)
        {
            return await Refuse(http);
        }

        if (await page.ReadFormAsync() is not { } form)
        {
            return await page.FormExpiredAsync();
        }

        var json = form["definition"].ToString();
        var active = form["active"] == "yes";
        if (json.Length > 100_000)
        {
            return await ProceduresPageAsync(page, "", "", active, ["definition: at most 100,000 characters"]);
        }

        if (ProcedureDefinition.Parse(json, out var errors) is not { } definition)
        {
            return await ProceduresPageAsync(page, "", json, active, errors);
        }

        await page.Store.SaveProcedureAsync(new StoredProcedure(definition.Code, definition.ToJson(), active, time.GetUtcNow()), page.Aborted);
        return Results.Redirect("/portal/staff/procedures?done=saved&code=" + Uri.EscapeDataString(definition.Code));
    }
}
