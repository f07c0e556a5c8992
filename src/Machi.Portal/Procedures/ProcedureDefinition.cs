using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Machi.Portal.Storage;

namespace Machi.Portal.Procedures;

/// <summary>
/// An online administrative procedure (デジタル行政手続) as staff define it: data, not code. Stored as JSON; see the
/// two seeded examples in <see cref="SeedProcedures"/>.
/// </summary>
internal sealed partial record ProcedureDefinition(
    string Code,
    Bilingual Title,
    Bilingual Description,
    Bilingual Department,
    IReadOnlyList<FieldDefinition> Fields,
    IReadOnlyList<AttachmentDefinition>? Attachments)
{
    public IReadOnlyList<AttachmentDefinition> Files => Attachments ?? [];

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Parses and checks a definition; on failure <paramref name="errors"/> says what is wrong, in English.</summary>
    public static ProcedureDefinition? Parse(string json, out List<string> errors)
    {
        errors = [];
        ProcedureDefinition? definition;
        try
        {
            definition = JsonSerializer.Deserialize<ProcedureDefinition>(json, Json);
        }
        catch (JsonException e)
        {
            errors.Add("JSON: " + e.Message);
            return null;
        }

        if (definition is null)
        {
            errors.Add("JSON: empty");
            return null;
        }

        errors.AddRange(definition.Problems());
        return errors.Count == 0 ? definition : null;
    }

    public static IReadOnlyList<string> FieldTypes { get; } = ["text", "textarea", "number", "date", "select", "email", "tel", "district", "checkbox"];

    private IEnumerable<string> Problems()
    {
        if (Code is null || !CodePattern().IsMatch(Code))
        {
            yield return "code: 2–40 characters of a–z, 0–9 and '-'";
        }

        if (string.IsNullOrWhiteSpace(Title?.Ja) || string.IsNullOrWhiteSpace(Title?.En))
        {
            yield return "title: needs ja and en";
        }

        if (Description is null || Department is null || string.IsNullOrWhiteSpace(Department.Ja))
        {
            yield return "description and department: need ja and en";
        }

        if (Fields is null || Fields.Count == 0)
        {
            yield return "fields: at least one";
            yield break;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in Fields)
        {
            if (field?.Name is null || !NamePattern().IsMatch(field.Name) || !names.Add(field.Name))
            {
                yield return $"fields: name '{field?.Name}' must be unique, a–z, 0–9 and '_'";
                continue;
            }

            if (!FieldTypes.Contains(field.Type))
            {
                yield return $"{field.Name}: type must be one of {string.Join(", ", FieldTypes)}";
            }

            if (string.IsNullOrWhiteSpace(field.Label?.Ja) || string.IsNullOrWhiteSpace(field.Label?.En))
            {
                yield return $"{field.Name}: label needs ja and en";
            }

            if (field.Type == "select" && (field.Options is null || field.Options.Count == 0))
            {
                yield return $"{field.Name}: a select needs options";
            }

            if (field.Min is { } min && field.Max is { } max && min > max)
            {
                yield return $"{field.Name}: min is above max";
            }

            if (field.Pattern is { } pattern && !IsRegex(pattern))
            {
                yield return $"{field.Name}: pattern is not a valid regular expression";
            }
        }

        foreach (var file in Files)
        {
            if (file?.Name is null || !NamePattern().IsMatch(file.Name) || !names.Add(file.Name))
            {
                yield return $"attachments: name '{file?.Name}' must be unique, a–z, 0–9 and '_'";
                continue;
            }

            if (string.IsNullOrWhiteSpace(file.Label?.Ja) || string.IsNullOrWhiteSpace(file.Label?.En))
            {
                yield return $"{file.Name}: label needs ja and en";
            }

            if (file.Types is { } types && types.Any(t => !FileTypes.Allowed.Contains(t)))
            {
                yield return $"{file.Name}: types must be among {string.Join(", ", FileTypes.Allowed)}";
            }
        }
    }

    private static bool IsRegex(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{1,39}$")]
    private static partial Regex CodePattern();

    [GeneratedRegex("^[a-z][a-z0-9_]{0,39}$")]
    private static partial Regex NamePattern();
}

/// <summary>One input of a procedure's form.</summary>
internal sealed record FieldDefinition(
    string Name,
    string Type,
    Bilingual Label,
    Bilingual? Help = null,
    bool Required = false,
    int? MaxLength = null,
    decimal? Min = null,
    decimal? Max = null,
    string? Pattern = null,
    int? MinDaysAhead = null,
    IReadOnlyList<FieldOption>? Options = null);

internal sealed record FieldOption(string Value, Bilingual Label);

/// <summary>A file the resident attaches (one per slot), limited to <see cref="Types"/> (default PDF, JPEG, PNG).</summary>
internal sealed record AttachmentDefinition(string Name, Bilingual Label, Bilingual? Help = null, bool Required = false, IReadOnlyList<string>? Types = null);
