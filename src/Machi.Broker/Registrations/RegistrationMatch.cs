using System.Text.RegularExpressions;

namespace Machi.Broker.Registrations;

/// <summary>The entities a request is about: ids, an id pattern, types and attribute names (expanded); null means any.</summary>
internal sealed record EntitySelection(IReadOnlyList<string>? Ids, Regex? IdPattern, IReadOnlyList<string>? Types, IReadOnlyCollection<string>? Attrs);

/// <summary>
/// Whether a registration can hold data a request asks for (clause 5.12, used both to query registrations and to
/// route distributed operations). A selector a registration leaves open (no id, no attributes) matches anything;
/// an id pattern against a registered pattern cannot be decided, so it matches.
/// </summary>
internal static class RegistrationMatch
{
    public static bool Matches(CSourceRegistration registration, EntitySelection selection) =>
        registration.Information.Any(info => Matches(info, selection));

    public static bool Matches(RegistrationInfo info, EntitySelection selection)
    {
        if (selection.Attrs is { Count: > 0 } attrs && info.Attributes is { } registered && !registered.Any(attrs.Contains))
        {
            return false;
        }

        return info.Entities is null || info.Entities.Any(e => Matches(e, selection));
    }

    /// <summary>The attributes the matching information items register; null when one of them registers whole entities.</summary>
    public static HashSet<string>? RegisteredAttributes(CSourceRegistration registration, EntitySelection selection)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var info in registration.Information)
        {
            if (!Matches(info, selection))
            {
                continue;
            }

            if (info.Attributes is null)
            {
                return null;
            }

            names.UnionWith(info.Attributes);
        }

        return names;
    }

    /// <summary>The attributes an exclusive registration takes over for one entity (empty when it does not cover it).</summary>
    public static IEnumerable<string> ExclusiveAttributes(CSourceRegistration registration, string entityId, IReadOnlyList<string> types) =>
        registration.Information
            .Where(info => info.Entities!.Any(e => e.Id == entityId && e.Types.Any(types.Contains)))
            .SelectMany(info => info.Attributes!);

    private static bool Matches(RegistrationEntity entity, EntitySelection selection)
    {
        if (selection.Types is { Count: > 0 } types && !entity.Types.Any(types.Contains))
        {
            return false;
        }

        if (selection.Ids is { Count: > 0 } ids)
        {
            if (entity.Id is not null && !ids.Contains(entity.Id))
            {
                return false;
            }

            if (entity.Id is null && entity.Pattern is { } pattern && !ids.Any(pattern.IsMatch))
            {
                return false;
            }
        }

        return selection.IdPattern is null || entity.Id is null || selection.IdPattern.IsMatch(entity.Id);
    }
}
