using System.Globalization;
using System.Text;
using Machi.Portal.Storage;
using Machi.Portal.Web;

namespace Machi.Portal.Procedures;

/// <summary>Renders a procedure's form from its definition, and an application's answers for reading.</summary>
internal static class ProcedureForm
{
    public static async Task<ProcedureDefinition?> LoadAsync(IPortalStore store, string code, bool activeOnly, CancellationToken cancellationToken)
    {
        var stored = await store.GetProcedureAsync(code, cancellationToken);
        return stored is null || (activeOnly && !stored.Active) ? null : ProcedureDefinition.Parse(stored.Definition, out _);
    }

    public static string Message(PortalPage page, FieldError error) =>
        error.Argument is null ? page.T(error.Code) : page.T(error.Code, error.Argument);

    public static string Render(PortalPage page, ProcedureDefinition definition, IReadOnlyDictionary<string, string> values,
        IReadOnlyList<FieldError> errors, long maxBytes)
    {
        var lang = page.Lang;
        var html = new StringBuilder();
        if (errors.Count > 0)
        {
            html.Append("<div class=\"error\" role=\"alert\" data-error=\"invalid\" tabindex=\"-1\" id=\"error-summary\"><p>")
                .Append(PortalPage.E(page.T("form_has_errors"))).Append("</p><ul>");
            foreach (var error in errors)
            {
                var label = definition.Fields.FirstOrDefault(f => f.Name == error.Field)?.Label.In(lang)
                    ?? definition.Files.FirstOrDefault(f => f.Name == error.Field)?.Label.In(lang) ?? error.Field;
                html.Append("<li><a href=\"#").Append(PortalPage.E(error.Field)).Append("\">").Append(PortalPage.E(label)).Append(": ")
                    .Append(PortalPage.E(Message(page, error))).Append("</a></li>");
            }

            html.Append("</ul></div>");
        }

        var fields = new StringBuilder();
        foreach (var field in definition.Fields)
        {
            values.TryGetValue(field.Name, out var value);
            var error = errors.FirstOrDefault(e => e.Field == field.Name) is { } e ? Message(page, e) : null;
            var label = field.Label.In(lang);
            var help = field.Help?.In(lang);
            fields.Append(field.Type switch
            {
                "textarea" => Fields.TextArea(page, field.Name, label, value, field.Required, help, error,
                    field.MaxLength ?? FormValidator.DefaultTextareaLength),
                "select" => Fields.Select(page, field.Name, label, (field.Options ?? []).Select(o => (o.Value, o.Label.In(lang))), value,
                    field.Required, help, error, emptyText: page.T("choose")),
                "district" => Fields.Select(page, field.Name, label, Fields.Districts(), value, field.Required, help, error, emptyText: page.T("choose")),
                "checkbox" => Checkbox(page, field, value == "yes", error),
                _ => Fields.Input(page, field.Name, InputType(field.Type), label, value, field.Required, help, error, Extra(field)),
            });
        }

        foreach (var file in definition.Files)
        {
            var error = errors.FirstOrDefault(e => e.Field == file.Name) is { } e ? Message(page, e) : null;
            var types = file.Types is { Count: > 0 } t ? t : FileTypes.Allowed;
            var help = (file.Help?.In(lang) is { Length: > 0 } h ? h + " " : "")
                + page.T("file_limits", string.Join(", ", types.Select(FileTypes.Label)), (maxBytes / (1024 * 1024)).ToString(CultureInfo.InvariantCulture));
            fields.Append(Fields.Input(page, file.Name, "file", file.Label.In(lang), null, file.Required, help, error,
                $"accept=\"{string.Join(',', types)}\""));
        }

        html.Append(page.Form("/portal/procedures/" + definition.Code, fields.ToString(), "submit_application", multipart: true));
        return html.ToString();
    }

    private static string Checkbox(PortalPage page, FieldDefinition field, bool on, string? error) =>
        $"<div class=\"field choice\"><input type=\"checkbox\" id=\"{field.Name}\" name=\"{field.Name}\" value=\"yes\"{(on ? " checked" : "")}"
        + $"{(field.Required ? " required" : "")}{(error is null ? "" : $" aria-invalid=\"true\" aria-describedby=\"{field.Name}-error\"")}>"
        + $"<label for=\"{field.Name}\">{PortalPage.E(field.Label.In(page.Lang))}{(field.Required ? $" <span class=\"req\">{PortalPage.E(page.T("required"))}</span>" : "")}</label>"
        + Fields.Error(field.Name, error) + "</div>";

    private static string InputType(string type) => type switch
    {
        "number" => "number",
        "date" => "date",
        "email" => "email",
        "tel" => "tel",
        _ => "text",
    };

    private static string Extra(FieldDefinition field)
    {
        var extra = new StringBuilder();
        if (field.Type is "text" or "email" or "tel")
        {
            extra.Append(CultureInfo.InvariantCulture, $" maxlength=\"{field.MaxLength ?? FormValidator.DefaultTextLength}\"");
        }

        if (field.Type == "number")
        {
            extra.Append(" inputmode=\"numeric\"");
            if (field.Min is { } min)
            {
                extra.Append(CultureInfo.InvariantCulture, $" min=\"{min}\"");
            }

            if (field.Max is { } max)
            {
                extra.Append(CultureInfo.InvariantCulture, $" max=\"{max}\"");
            }
        }

        if (field.Type == "tel")
        {
            extra.Append(" autocomplete=\"tel\"");
        }

        if (field.Name == "name")
        {
            extra.Append(" autocomplete=\"name\"");
        }

        return extra.ToString();
    }

    /// <summary>The answers as a definition list, in the form's order, options shown by their label.</summary>
    public static string Answers(PortalPage page, ProcedureDefinition? definition, Submission submission)
    {
        var html = new StringBuilder("<dl class=\"answers\">");
        if (definition is null)
        {
            foreach (var (name, value) in submission.Values)
            {
                html.Append("<dt>").Append(PortalPage.E(name)).Append("</dt><dd>").Append(PortalPage.E(value)).Append("</dd>");
            }
        }
        else
        {
            foreach (var field in definition.Fields)
            {
                if (!submission.Values.TryGetValue(field.Name, out var value))
                {
                    continue;
                }

                var shown = field.Type switch
                {
                    "select" => field.Options?.FirstOrDefault(o => o.Value == value)?.Label.In(page.Lang) ?? value,
                    "checkbox" => page.T(value == "yes" ? "yes" : "no"),
                    _ => value,
                };
                html.Append("<dt>").Append(PortalPage.E(field.Label.In(page.Lang))).Append("</dt><dd data-answer=\"").Append(PortalPage.E(field.Name)).Append("\">")
                    .Append(PortalPage.E(shown)).Append("</dd>");
            }
        }

        return html.Append("</dl>").ToString();
    }

    public static string Attachments(PortalPage page, IReadOnlyList<Attachment> attachments)
    {
        if (attachments.Count == 0)
        {
            return $"<p>{PortalPage.E(page.T("no_attachments"))}</p>";
        }

        var html = new StringBuilder("<ul class=\"attachments\">");
        foreach (var a in attachments)
        {
            html.Append("<li><a href=\"/portal/attachments/").Append(a.Id).Append("\" data-attachment>").Append(PortalPage.E(a.OriginalName.Length > 0 ? a.OriginalName : a.Id))
                .Append("</a> (").Append(FileTypes.Label(a.ContentType)).Append(", ").Append(Math.Max(1, a.Size / 1024)).Append(" KB)</li>");
        }

        return html.Append("</ul>").ToString();
    }

    public static string History(PortalPage page, IReadOnlyList<StatusChange> history, bool showActor)
    {
        var html = new StringBuilder("<ol class=\"history\">");
        foreach (var change in history)
        {
            html.Append("<li>").Append(page.Status(change.Status)).Append(" <time>").Append(PortalPage.E(PortalPage.When(change.At))).Append("</time>");
            if (showActor)
            {
                html.Append(" <span class=\"small\">").Append(PortalPage.E(change.Actor)).Append("</span>");
            }

            if (!string.IsNullOrWhiteSpace(change.Comment))
            {
                html.Append("<p class=\"comment\" data-comment>").Append(PortalPage.E(change.Comment)).Append("</p>");
            }

            html.Append("</li>");
        }

        return html.Append("</ol>").ToString();
    }
}
