using System.Text;
using Machi.Portal.Feed;

namespace Machi.Portal.Web;

/// <summary>Labelled form controls, with their error message tied to them (aria-describedby) when there is one.</summary>
internal static class Fields
{
    public static string Error(string id, string? message) =>
        message is null ? "" : $"<p class=\"field-error\" id=\"{id}-error\" data-field-error=\"{PortalPage.E(id)}\">{PortalPage.E(message)}</p>";

    private static string Described(string id, string? help, string? error)
    {
        var ids = new List<string>();
        if (help is not null)
        {
            ids.Add(id + "-help");
        }

        if (error is not null)
        {
            ids.Add(id + "-error");
        }

        return (ids.Count > 0 ? $" aria-describedby=\"{string.Join(' ', ids)}\"" : "") + (error is not null ? " aria-invalid=\"true\"" : "");
    }

    private static string Label(string id, string label, bool required, string requiredText) =>
        $"<label for=\"{id}\">{PortalPage.E(label)}{(required ? $" <span class=\"req\">{PortalPage.E(requiredText)}</span>" : "")}</label>";

    private static string Help(string id, string? help) => help is null ? "" : $"<p class=\"help\" id=\"{id}-help\">{PortalPage.E(help)}</p>";

    public static string Input(PortalPage page, string id, string type, string label, string? value, bool required = false,
        string? help = null, string? error = null, string extra = "") =>
        $"<div class=\"field\">{Label(id, label, required, page.T("required"))}{Help(id, help)}"
        + $"<input id=\"{id}\" name=\"{id}\" type=\"{type}\" value=\"{PortalPage.E(value)}\"{(required ? " required" : "")}{Described(id, help, error)} {extra}>"
        + $"{Error(id, error)}</div>";

    public static string TextArea(PortalPage page, string id, string label, string? value, bool required = false, string? help = null,
        string? error = null, int? maxLength = null, int rows = 4) =>
        $"<div class=\"field\">{Label(id, label, required, page.T("required"))}{Help(id, help)}"
        + $"<textarea id=\"{id}\" name=\"{id}\" rows=\"{rows}\"{(maxLength is { } m ? $" maxlength=\"{m}\"" : "")}{(required ? " required" : "")}{Described(id, help, error)}>{PortalPage.E(value)}</textarea>"
        + $"{Error(id, error)}</div>";

    public static string Select(PortalPage page, string id, string label, IEnumerable<(string Value, string Text)> options, string? selected,
        bool required = false, string? help = null, string? error = null, string? emptyText = null, bool multiple = false,
        IReadOnlyCollection<string>? selectedMany = null)
    {
        var html = new StringBuilder()
            .Append("<div class=\"field\">").Append(Label(id, label, required, page.T("required"))).Append(Help(id, help))
            .Append("<select id=\"").Append(id).Append("\" name=\"").Append(id).Append('"')
            .Append(required ? " required" : "").Append(multiple ? " multiple size=\"8\"" : "").Append(Described(id, help, error)).Append('>');
        if (emptyText is not null)
        {
            html.Append("<option value=\"\">").Append(PortalPage.E(emptyText)).Append("</option>");
        }

        foreach (var (value, text) in options)
        {
            var isSelected = multiple ? selectedMany?.Contains(value) == true : value == selected;
            html.Append("<option value=\"").Append(PortalPage.E(value)).Append('"').Append(isSelected ? " selected" : "").Append('>')
                .Append(PortalPage.E(text)).Append("</option>");
        }

        return html.Append("</select>").Append(Error(id, error)).Append("</div>").ToString();
    }

    /// <summary>A group of checkboxes (or radios) in a fieldset with a legend.</summary>
    public static string Choices(string name, string legend, IEnumerable<(string Value, string Text)> options, IReadOnlyCollection<string> chosen,
        bool radio = false, string? error = null)
    {
        var html = new StringBuilder().Append("<fieldset class=\"choices\"><legend>").Append(PortalPage.E(legend)).Append("</legend>");
        var i = 0;
        foreach (var (value, text) in options)
        {
            var id = $"{name}-{i++}";
            html.Append("<div class=\"choice\"><input type=\"").Append(radio ? "radio" : "checkbox").Append("\" id=\"").Append(id)
                .Append("\" name=\"").Append(name).Append("\" value=\"").Append(PortalPage.E(value)).Append('"')
                .Append(chosen.Contains(value) ? " checked" : "").Append("><label for=\"").Append(id).Append("\">")
                .Append(PortalPage.E(text)).Append("</label></div>");
        }

        return html.Append(Error(name, error)).Append("</fieldset>").ToString();
    }

    public static IEnumerable<(string, string)> Districts() => Towns.All.Select(t => (t, t));
}
