using Machi.Portal.Storage;

namespace Machi.Portal.Feed;

/// <summary>Which notices a resident sees, from the profile attributes they chose to share.</summary>
internal static class Targeting
{
    public static IReadOnlyList<string> AgeGroups { get; } = ["under18", "18to39", "40to64", "65to74", "75plus"];

    /// <summary>世帯: children (子育て), elderly (高齢者), care needs (要介護・要配慮).</summary>
    public static IReadOnlyList<string> Household { get; } = ["children", "elderly", "care"];

    public static IReadOnlyList<string> Interests { get; } =
        ["disaster", "snow", "health", "childcare", "events", "garbage", "transport", "tax"];

    /// <summary>
    /// True when <paramref name="resident"/> is in <paramref name="notice"/>'s audience: on every dimension the notice
    /// targets, the resident told a value and one of theirs is targeted. A notice that targets nothing is for everyone.
    /// </summary>
    public static bool Matches(Audience notice, Audience resident) =>
        Dimension(notice.Districts, resident.Districts)
        && Dimension(notice.AgeGroups, resident.AgeGroups)
        && Dimension(notice.Household, resident.Household)
        && Dimension(notice.Interests, resident.Interests);

    private static bool Dimension(IReadOnlyList<string> targeted, IReadOnlyList<string> told) =>
        targeted.Count == 0 || told.Any(v => targeted.Contains(v, StringComparer.Ordinal));

    /// <summary>
    /// The home feed: without a profile every published notice (everything is public); with one, the notices for
    /// everyone plus those targeted at this resident, and whether each was targeted at them.
    /// </summary>
    public static IReadOnlyList<(Notice Notice, bool ForYou)> Feed(IReadOnlyList<Notice> published, Profile? profile)
    {
        if (profile is null)
        {
            return [.. published.Select(n => (n, false))];
        }

        var resident = profile.AsAudience();
        return [.. published.Where(n => Matches(n.Audience, resident)).Select(n => (n, !n.Audience.IsEveryone))];
    }

    /// <summary>Keeps only known values, in the canonical order.</summary>
    public static List<string> Known(IEnumerable<string> values, IReadOnlyList<string> allowed)
    {
        var set = values.ToHashSet(StringComparer.Ordinal);
        return [.. allowed.Where(set.Contains)];
    }
}
