using System.Text.Json;

namespace Machi.Snow.Map;

/// <summary>One 町字 (town) or 小字 (sub-area) of the city with its representative point (Geolonia 住所データ, CC BY 4.0).</summary>
internal sealed record Town(string Name, string Koaza, double Lat, double Lon)
{
    /// <summary>"町字 小字", or the 町字 alone.</summary>
    public string FullName => Koaza.Length == 0 ? Name : Name + " " + Koaza;
}

/// <summary>The city's 町字/小字 list, embedded from cities/aizuwakamatsu/towns-geolonia.json. Districts are the 町字.</summary>
internal static class Towns
{
    private static readonly Lazy<IReadOnlyList<Town>> List = new(Load);

    public static IReadOnlyList<Town> All => List.Value;

    /// <summary>Towns whose name contains the words typed (spaces separate words; every word must match).</summary>
    public static List<Town> Search(string query, int limit)
    {
        var words = query.Split([' ', '　'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (words.Length == 0)
        {
            return [];
        }

        return All.Where(t => words.All(w => t.Name.Contains(w, StringComparison.OrdinalIgnoreCase) || t.Koaza.Contains(w, StringComparison.OrdinalIgnoreCase)))
            .OrderBy(t => t.Koaza.Length == 0 ? 0 : 1)
            .ThenBy(t => t.FullName.Length)
            .Take(limit)
            .ToList();
    }

    private static List<Town> Load()
    {
        using var stream = typeof(Towns).Assembly.GetManifestResourceStream("Machi.Snow.towns-geolonia.json")
            ?? throw new InvalidOperationException("The town list is not embedded.");
        using var document = JsonDocument.Parse(stream);
        return document.RootElement.EnumerateArray()
            .Select(t => new Town(t.GetProperty("town").GetString()!, t.GetProperty("koaza").GetString() ?? "", t.GetProperty("lat").GetDouble(), t.GetProperty("lng").GetDouble()))
            .ToList();
    }
}
