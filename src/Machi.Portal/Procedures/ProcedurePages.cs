using System.Text;
using Machi.Portal.Storage;
using Machi.Portal.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Machi.Portal.Procedures;

/// <summary>The resident's side of online procedures: find one, fill and submit it, follow its status, read notifications.</summary>
internal static class ProcedurePages
{
    public static IEndpointRouteBuilder MapProcedurePages(this IEndpointRouteBuilder app)
    {
        app.MapGet("/portal/procedures", (Delegate)List).ExcludeFromDescription();
        app.MapGet("/portal/procedures/{code}", Form).ExcludeFromDescription();
        app.MapPost("/portal/procedures/{code}", Submit).ExcludeFromDescription();
        app.MapGet("/portal/applications", (Delegate)Applications).ExcludeFromDescription();
        app.MapGet("/portal/applications/{id:long}", Application).ExcludeFromDescription();
        app.MapGet("/portal/attachments/{id}", Download).ExcludeFromDescription();
        app.MapGet("/portal/notifications", Notifications).ExcludeFromDescription();
        return app;
    }

    private static async Task<IResult> List(HttpContext http)
    {
        var page = await PortalPage.ForAsync(http);
        var body = new StringBuilder("<p>").Append(PortalPage.E(page.T("procedures_intro"))).Append("</p><ul class=\"cards\">");
        foreach (var stored in await page.Store.ProceduresAsync(activeOnly: true, page.Aborted))
        {
            if (ProcedureDefinition.Parse(stored.Definition, out _) is not { } definition)
            {
                continue;
            }

            body.Append("<li class=\"card\" data-procedure=\"").Append(PortalPage.E(definition.Code)).Append("\"><h2><a href=\"/portal/procedures/")
                .Append(PortalPage.E(definition.Code)).Append("\">").Append(PortalPage.E(definition.Title.In(page.Lang))).Append("</a></h2><p>")
                .Append(PortalPage.E(definition.Description.In(page.Lang))).Append("</p><p class=\"small\">")
                .Append(PortalPage.E(page.T("department"))).Append(": ").Append(PortalPage.E(definition.Department.In(page.Lang))).Append("</p></li>");
        }

        body.Append("</ul>");
        return await page.RenderAsync("procedures_title", body.ToString());
    }

    private static async Task<IResult> Form(HttpContext http, string code, AttachmentStore files)
    {
        var page = await PortalPage.ForAsync(http);
        if (await ProcedureForm.LoadAsync(page.Store, code, activeOnly: true, page.Aborted) is not { } definition)
        {
            return await page.NotFoundAsync();
        }

        return await RenderFormAsync(page, definition, new Dictionary<string, string>(), [], files.MaxBytes, StatusCodes.Status200OK);
    }

    private static async Task<IResult> RenderFormAsync(PortalPage page, ProcedureDefinition definition, IReadOnlyDictionary<string, string> values,
        IReadOnlyList<FieldError> errors, long maxBytes, int status)
    {
        var body = new StringBuilder()
            .Append("<p>").Append(PortalPage.E(definition.Description.In(page.Lang))).Append("</p>")
            .Append("<p class=\"small\">").Append(PortalPage.E(page.T("department"))).Append(": ").Append(PortalPage.E(definition.Department.In(page.Lang))).Append("</p>");
        if (!page.Viewer.IsSignedIn)
        {
            body.Append("<p><a class=\"button\" href=\"").Append(PortalPage.E(page.LoginUrl)).Append("\">").Append(PortalPage.E(page.T("login_to_apply"))).Append("</a></p>");
        }
        else
        {
            body.Append(ProcedureForm.Render(page, definition, values, errors, maxBytes));
        }

        return await page.RenderRawAsync(definition.Title.In(page.Lang), body.ToString(), status);
    }

    private static async Task<IResult> Submit(HttpContext http, string code, AttachmentStore files, TimeProvider time, ILoggerFactory logs)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        if (await ProcedureForm.LoadAsync(page.Store, code, activeOnly: true, page.Aborted) is not { } definition)
        {
            return await page.NotFoundAsync();
        }

        // Room for every slot at twice the limit plus the text fields, so a file somewhat too large is read and refused
        // with a message next to its field; a body beyond that is cut off by the server (413) before it is stored.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = (2 * files.MaxBytes * Math.Max(1, definition.Files.Count)) + (1024 * 1024);
        }

        IFormCollection? form;
        try
        {
            form = await page.ReadFormAsync();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            var tooLarge = definition.Files.Select(f => new FieldError(f.Name, "v_file_too_large", $"{files.MaxBytes / (1024 * 1024)} MB")).Take(1).ToList();
            return await RenderFormAsync(page, definition, new Dictionary<string, string>(), tooLarge, files.MaxBytes, StatusCodes.Status413PayloadTooLarge);
        }
        catch (InvalidDataException)
        {
            // A malformed multipart body or one over the form limits: the client's fault, said plainly.
            return await page.FormExpiredAsync();
        }

        if (form is null)
        {
            return await page.FormExpiredAsync();
        }

        var (values, errors) = FormValidator.Validate(definition, name => form[name].ToString(), City.Today(time));
        var accepted = new List<(string Field, IFormFile File, string Type)>();
        foreach (var slot in definition.Files)
        {
            var file = form.Files.GetFile(slot.Name);
            var (type, error) = await files.CheckAsync(slot, file, page.Aborted);
            if (error is not null)
            {
                errors.Add(error);
            }
            else if (type is not null)
            {
                accepted.Add((slot.Name, file!, type));
            }
        }

        if (errors.Count > 0)
        {
            var shown = definition.Fields.Where(f => form.ContainsKey(f.Name)).ToDictionary(f => f.Name, f => form[f.Name].ToString(), StringComparer.Ordinal);
            return await RenderFormAsync(page, definition, shown, errors, files.MaxBytes, StatusCodes.Status400BadRequest);
        }

        var saved = new List<Attachment>();
        try
        {
            foreach (var (field, file, type) in accepted)
            {
                saved.Add(await files.SaveAsync(field, file, type, page.Aborted));
            }

            var now = time.GetUtcNow();
            var id = await page.Store.AddSubmissionAsync(
                new Submission(0, definition.Code, page.Viewer.UserId!, page.Viewer.Email ?? "", values, SubmissionStatus.Submitted, now, now),
                saved, CancellationToken.None);
            return Results.Redirect($"/portal/applications/{id}?done=submitted", permanent: false);
        }
        catch (Exception e) when (e is IOException or Microsoft.Data.Sqlite.SqliteException or OperationCanceledException)
        {
            // Nothing half-kept: the files of an application that was not stored go too.
            foreach (var attachment in saved)
            {
                files.Delete(attachment.StoredName);
            }

            logs.CreateLogger("Machi.Portal.Procedures").LogError(e, "Storing an application for {Procedure} failed", definition.Code);
            throw;
        }
    }

    private static async Task<IResult> Applications(HttpContext http)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        var mine = await page.Store.SubmissionsOfAsync(page.Viewer.UserId!, page.Aborted);
        var body = new StringBuilder();
        if (mine.Count == 0)
        {
            body.Append("<p>").Append(PortalPage.E(page.T("applications_none"))).Append(" <a href=\"/portal/procedures\">")
                .Append(PortalPage.E(page.T("nav_procedures"))).Append("</a></p>");
        }
        else
        {
            body.Append("<ul class=\"cards\">");
            foreach (var submission in mine)
            {
                var title = (await ProcedureForm.LoadAsync(page.Store, submission.ProcedureCode, false, page.Aborted))?.Title.In(page.Lang) ?? submission.ProcedureCode;
                body.Append("<li class=\"card\" data-application=\"").Append(submission.Id).Append("\"><h2><a href=\"/portal/applications/").Append(submission.Id).Append("\">")
                    .Append(PortalPage.E(title)).Append("</a></h2><p>").Append(PortalPage.E(page.T("application_number", submission.Id))).Append(" · ")
                    .Append(page.Status(submission.Status)).Append(" · ").Append(PortalPage.E(PortalPage.When(submission.UpdatedAt))).Append("</p></li>");
            }

            body.Append("</ul>");
        }

        return await page.RenderAsync("applications_title", body.ToString());
    }

    private static async Task<IResult> Application(HttpContext http, long id)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        // Someone else's application does not exist, as far as this resident can tell.
        if (await page.Store.GetSubmissionAsync(id, page.Aborted) is not { } submission || submission.UserId != page.Viewer.UserId)
        {
            return await page.NotFoundAsync();
        }

        var definition = await ProcedureForm.LoadAsync(page.Store, submission.ProcedureCode, false, page.Aborted);
        var body = new StringBuilder();
        if (http.Request.Query["done"] == "submitted")
        {
            body.Append(page.Notice("application_submitted"));
        }

        body.Append("<p>").Append(PortalPage.E(page.T("application_number", submission.Id))).Append("</p>")
            .Append("<p>").Append(PortalPage.E(page.T("current_status"))).Append(": ").Append(page.Status(submission.Status)).Append("</p>")
            .Append("<h2>").Append(PortalPage.E(page.T("history"))).Append("</h2>")
            .Append(ProcedureForm.History(page, await page.Store.HistoryAsync(id, page.Aborted), showActor: false))
            .Append("<h2>").Append(PortalPage.E(page.T("answers"))).Append("</h2>")
            .Append(ProcedureForm.Answers(page, definition, submission))
            .Append("<h2>").Append(PortalPage.E(page.T("attachments"))).Append("</h2>")
            .Append(ProcedureForm.Attachments(page, await page.Store.AttachmentsAsync(id, page.Aborted)));
        return await page.RenderRawAsync(definition?.Title.In(page.Lang) ?? submission.ProcedureCode, body.ToString());
    }

    /// <summary>An attachment, to its owner and to staff only, always as a download under a name Machi makes.</summary>
    private static async Task<IResult> Download(HttpContext http, string id, AttachmentStore files)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        var attachment = await page.Store.GetAttachmentAsync(id, page.Aborted);
        var submission = attachment is null ? null : await page.Store.GetSubmissionAsync(attachment.SubmissionId, page.Aborted);
        if (attachment is null || submission is null || (submission.UserId != page.Viewer.UserId && !page.Viewer.IsStaff)
            || files.Open(attachment.StoredName) is not { } stream)
        {
            return await page.NotFoundAsync();
        }

        http.Response.Headers["X-Content-Type-Options"] = "nosniff";
        http.Response.Headers.ContentSecurityPolicy = "default-src 'none'; sandbox";
        http.Response.Headers.CacheControl = "private, no-store";
        return Results.File(stream, attachment.ContentType, $"application-{submission.Id}-{attachment.Field}{FileTypes.Extension(attachment.ContentType)}");
    }

    private static async Task<IResult> Notifications(HttpContext http, TimeProvider time)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        var list = await page.Store.NotificationsAsync(page.Viewer.UserId!, page.Aborted);
        var body = new StringBuilder();
        if (list.Count == 0)
        {
            body.Append("<p>").Append(PortalPage.E(page.T("notifications_none"))).Append("</p>");
        }
        else
        {
            body.Append("<ul class=\"cards\">");
            foreach (var n in list)
            {
                body.Append("<li class=\"card").Append(n.ReadAt is null ? " unread" : "").Append("\" data-notification=\"").Append(n.SubmissionId).Append("\"><p>")
                    .Append(n.ReadAt is null ? $"<strong class=\"badge\">{PortalPage.E(page.T("new"))}</strong> " : "")
                    .Append("<a href=\"/portal/applications/").Append(n.SubmissionId).Append("\">").Append(PortalPage.E(page.T("notification_text", n.SubmissionId)))
                    .Append("</a> ").Append(page.Status(n.Status)).Append("</p>");
                if (!string.IsNullOrWhiteSpace(n.Comment))
                {
                    body.Append("<p class=\"comment\">").Append(PortalPage.E(n.Comment)).Append("</p>");
                }

                body.Append("<p class=\"small\">").Append(PortalPage.E(PortalPage.When(n.CreatedAt))).Append("</p></li>");
            }

            body.Append("</ul>");
        }

        // Render first (the header still counts them as unread on this view), then mark them read.
        var result = await page.RenderAsync("notifications_title", body.ToString());
        await page.Store.MarkNotificationsReadAsync(page.Viewer.UserId!, time.GetUtcNow(), page.Aborted);
        return result;
    }
}
