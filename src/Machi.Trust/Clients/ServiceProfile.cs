using System.Collections.Immutable;
using System.Text.Json;
using OpenIddict.Abstractions;

namespace Machi.Trust.Clients;

/// <summary>
/// A registered client as residents and staff see it: its name, who operates it, the purposes it may ask residents to
/// consent to and the categories of data it needs (both empty for clients that never ask for consent: devices,
/// another city's broker, the city's own apps).
/// </summary>
public sealed record ServiceProfile(
    string ClientId,
    string Name,
    string? Operator,
    IReadOnlyList<string> Purposes,
    IReadOnlyList<string> Categories,
    IReadOnlyList<string> RedirectUris,
    bool Confidential)
{
    /// <summary>The application property that holds the profile.</summary>
    private const string Property = "machi_service";

    /// <summary>Whether the service registered this purpose and every one of these categories: all a resident may consent to.</summary>
    public bool Covers(string purpose, IEnumerable<string> categories) =>
        Purposes.Contains(purpose, StringComparer.Ordinal) && categories.All(c => Categories.Contains(c, StringComparer.Ordinal));

    /// <summary>Whether a purpose or category is a well-formed token: lower-case letters, digits, '.', '_' and '-', at most 64.</summary>
    public static bool IsToken(string text) =>
        text.Length is > 0 and <= 64 && text.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '.' or '_' or '-');

    /// <summary>Distinct well-formed tokens; <see cref="ArgumentException"/> naming the first that is not.</summary>
    internal static List<string> Tokens(IReadOnlyList<string>? texts, string what)
    {
        var tokens = (texts ?? []).Select(t => t.Trim()).Where(t => t.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        if (tokens.FirstOrDefault(t => !IsToken(t)) is { } bad)
        {
            throw new ArgumentException($"'{bad}' is not a {what}: use lower-case letters, digits, '.', '_' and '-' (at most 64)");
        }

        return tokens;
    }

    internal static void Store(OpenIddictApplicationDescriptor descriptor, string? operatorName, IReadOnlyList<string> purposes, IReadOnlyList<string> categories)
    {
        descriptor.Properties[Property] = JsonSerializer.SerializeToElement(new Stored(
            string.IsNullOrWhiteSpace(operatorName) ? null : operatorName.Trim(), [.. purposes], [.. categories]));
    }

    internal static async Task<ServiceProfile> ReadAsync(IOpenIddictApplicationManager applications, object application, CancellationToken ct)
    {
        var properties = await applications.GetPropertiesAsync(application, ct).ConfigureAwait(false);
        var stored = properties.TryGetValue(Property, out var json) && json.ValueKind == JsonValueKind.Object
            ? json.Deserialize<Stored>() ?? Stored.None
            : Stored.None;
        var clientId = await applications.GetClientIdAsync(application, ct).ConfigureAwait(false) ?? "";
        var redirects = await applications.GetRedirectUrisAsync(application, ct).ConfigureAwait(false);
        return new ServiceProfile(clientId, await applications.GetDisplayNameAsync(application, ct).ConfigureAwait(false) ?? clientId,
            stored.Operator, stored.Purposes ?? [], stored.Categories ?? [], [.. redirects],
            await applications.HasClientTypeAsync(application, OpenIddictConstants.ClientTypes.Confidential, ct).ConfigureAwait(false));
    }

    private sealed record Stored(string? Operator, string[]? Purposes, string[]? Categories)
    {
        public static readonly Stored None = new(null, [], []);
    }
}

/// <summary>Finds registered clients with their service profile (the consent page and the staff's list of services).</summary>
public sealed class ServiceDirectory(IOpenIddictApplicationManager applications)
{
    public async Task<ServiceProfile?> FindAsync(string? clientId, CancellationToken ct) =>
        string.IsNullOrEmpty(clientId) || await applications.FindByClientIdAsync(clientId, ct).ConfigureAwait(false) is not { } application
            ? null
            : await ServiceProfile.ReadAsync(applications, application, ct).ConfigureAwait(false);

    public async Task<IReadOnlyList<ServiceProfile>> ListAsync(CancellationToken ct)
    {
        var list = new List<ServiceProfile>();
        await foreach (var application in applications.ListAsync(null, null, ct).ConfigureAwait(false))
        {
            list.Add(await ServiceProfile.ReadAsync(applications, application, ct).ConfigureAwait(false));
        }

        return [.. list.OrderBy(s => s.Name, StringComparer.Ordinal)];
    }
}
