using System.Text.Json;

namespace Machi.Portal.Feed;

/// <summary>The city's 町字 (town and aza) names, from the shipped Geolonia address list: the districts residents choose.</summary>
internal static class Towns
{
    private static readonly Lazy<(IReadOnlyList<string> List, HashSet<string> Set)> Loaded = new(() =>
    {
        using var stream = typeof(Towns).Assembly.GetManifestResourceStream("Machi.Portal.towns.json")
            ?? throw new InvalidOperationException("The town list is missing from the build.");
        using var document = JsonDocument.Parse(stream);
        var names = document.RootElement.EnumerateArray()
            .Select(t => t.GetProperty("town").GetString() ?? "")
            .Where(n => n.Length > 0)
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();
        return (names, new HashSet<string>(names, StringComparer.Ordinal));
    });

    public static IReadOnlyList<string> All => Loaded.Value.List;

    public static bool IsKnown(string? name) => name is not null && Loaded.Value.Set.Contains(name);
}
