using System.Globalization;
using System.Text.RegularExpressions;
using Machi.Portal.Feed;

namespace Machi.Portal.Procedures;

/// <summary>A problem with one field: the text key of the message and its argument (a limit), if any.</summary>
internal sealed record FieldError(string Field, string Code, string? Argument = null);

/// <summary>Checks a resident's answers against a procedure's field definitions; pure, so it is tested directly.</summary>
internal static partial class FormValidator
{
    public const int DefaultTextLength = 200;
    public const int DefaultTextareaLength = 2000;

    /// <summary>
    /// Validates <paramref name="raw"/> (form values by field name) and returns the normalised values to store and the
    /// errors. <paramref name="today"/> is the date in the city (for "at least N days ahead").
    /// </summary>
    public static (Dictionary<string, string> Values, List<FieldError> Errors) Validate(
        ProcedureDefinition definition, Func<string, string?> raw, DateOnly today)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var errors = new List<FieldError>();
        foreach (var field in definition.Fields)
        {
            var value = (raw(field.Name) ?? "").Trim();
            if (field.Type == "checkbox")
            {
                var on = value is "on" or "yes" or "true";
                if (field.Required && !on)
                {
                    errors.Add(new FieldError(field.Name, "v_required"));
                }

                values[field.Name] = on ? "yes" : "no";
                continue;
            }

            if (value.Length == 0)
            {
                if (field.Required)
                {
                    errors.Add(new FieldError(field.Name, "v_required"));
                }

                continue;
            }

            var error = Check(field, value, today);
            if (error is not null)
            {
                errors.Add(error);
            }
            else
            {
                values[field.Name] = value;
            }
        }

        return (values, errors);
    }

    private static FieldError? Check(FieldDefinition field, string value, DateOnly today)
    {
        var max = field.MaxLength ?? (field.Type == "textarea" ? DefaultTextareaLength : DefaultTextLength);
        if (value.Length > max)
        {
            return new FieldError(field.Name, "v_too_long", max.ToString(CultureInfo.InvariantCulture));
        }

        switch (field.Type)
        {
            case "number":
                if (!decimal.TryParse(value, NumberStyles.Number, CultureInfo.InvariantCulture, out var number))
                {
                    return new FieldError(field.Name, "v_not_number");
                }

                if ((field.Min is { } min && number < min) || (field.Max is { } top && number > top))
                {
                    return new FieldError(field.Name, "v_out_of_range",
                        $"{field.Min?.ToString(CultureInfo.InvariantCulture) ?? ""}–{field.Max?.ToString(CultureInfo.InvariantCulture) ?? ""}");
                }

                break;
            case "date":
                if (!DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
                {
                    return new FieldError(field.Name, "v_not_date");
                }

                if (field.MinDaysAhead is { } days && date < today.AddDays(days))
                {
                    return new FieldError(field.Name, "v_too_soon", today.AddDays(days).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
                }

                break;
            case "select":
                if (field.Options?.Any(o => o.Value == value) != true)
                {
                    return new FieldError(field.Name, "v_not_option");
                }

                break;
            case "email":
                if (!EmailPattern().IsMatch(value))
                {
                    return new FieldError(field.Name, "v_not_email");
                }

                break;
            case "tel":
                if (!TelPattern().IsMatch(value))
                {
                    return new FieldError(field.Name, "v_not_tel");
                }

                break;
            case "district":
                if (!Towns.IsKnown(value))
                {
                    return new FieldError(field.Name, "v_not_district");
                }

                break;
        }

        if (field.Pattern is { } pattern)
        {
            try
            {
                if (!Regex.IsMatch(value, pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100)))
                {
                    return new FieldError(field.Name, "v_pattern");
                }
            }
            catch (RegexMatchTimeoutException)
            {
                return new FieldError(field.Name, "v_pattern");
            }
        }

        return null;
    }

    [GeneratedRegex(@"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    private static partial Regex EmailPattern();

    [GeneratedRegex(@"^\+?[0-9][0-9\- ]{5,18}[0-9]$")]
    private static partial Regex TelPattern();
}
