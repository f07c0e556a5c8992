using Machi.Ngsi.Errors;

namespace Machi.Ngsi.Model;

/// <summary>
/// The projection parameters pick and omit (clause 4.21): which members of each entity a response carries.
/// Attribute names are expanded with the request's @context; the core members keep their keyword names.
/// </summary>
public static class Projection
{
    public const string Id = "id";
    public const string Type = "type";
    public const string Scope = "scope";
    public const string CreatedAt = "createdAt";
    public const string ModifiedAt = "modifiedAt";

    private static readonly HashSet<string> CoreMembers = new(StringComparer.Ordinal) { Id, Type, Scope, CreatedAt, ModifiedAt };

    /// <summary>Reads pick= and omit= (comma-separated names) into the sets <see cref="RenderOptions"/> takes.</summary>
    /// <exception cref="NgsiException">BadRequestData: both given, an empty list or an invalid name.</exception>
    public static (IReadOnlySet<string>? Pick, IReadOnlySet<string>? Omit) Parse(string? pick, string? omit, Func<string, string> expandTerm)
    {
        ArgumentNullException.ThrowIfNull(expandTerm);
        if (pick is not null && omit is not null)
        {
            throw NgsiException.BadData("pick and omit cannot be used together: pick lists what to return, omit what to leave out.");
        }

        return (pick is null ? null : ParseList("pick", pick, expandTerm), omit is null ? null : ParseList("omit", omit, expandTerm));
    }

    private static HashSet<string> ParseList(string parameter, string text, Func<string, string> expandTerm)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var part in text.Split(','))
        {
            var name = part.Trim();
            if (!NgsiText.IsName(name) || name.Contains('{', StringComparison.Ordinal) || name.Contains('}', StringComparison.Ordinal))
            {
                throw NgsiException.BadData($"{parameter}: '{(name.Length <= 60 ? name : string.Concat(name.AsSpan(0, 57), "..."))}' is not a member name.");
            }

            names.Add(CoreMembers.Contains(name) ? name : expandTerm(name));
        }

        return names;
    }
}
