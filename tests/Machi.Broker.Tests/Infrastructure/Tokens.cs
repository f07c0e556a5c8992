using System.Text.Json.Nodes;
using Machi.Host.Cli;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>Gets access tokens the way a real client does: a client registered with the CLI, then client credentials.</summary>
public static class Tokens
{
    /// <summary>The CLI options that point a command at a server's data: its data directory and, on PostgreSQL, its database.</summary>
    public static string[] Location(string dataDirectory, string? database) =>
        database is null ? ["--data", dataDirectory] : ["--data", dataDirectory, "--database", database];

    /// <summary>Registers a client with <c>machi client add --name … [options]</c> on a data directory; its id and secret.</summary>
    public static Task<(string Id, string Secret)> AddClientAsync(string dataDirectory, params string[] options) =>
        AddClientAsync(Location(dataDirectory, null), options);

    /// <summary>As <see cref="AddClientAsync(string, string[])"/>, for the server at <paramref name="location"/> (<see cref="Location"/>).</summary>
    public static async Task<(string Id, string Secret)> AddClientAsync(string[] location, params string[] options)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await MachiCli.RunAsync(["client", "add", .. location, .. options], output, errors);
        if (code != 0)
        {
            throw new InvalidOperationException($"machi client add exited {code}: {errors}");
        }

        var json = JsonNode.Parse(output.ToString())!;
        return (json["client_id"]!.GetValue<string>(), json["client_secret"]!.GetValue<string>());
    }

    /// <summary>An access token of client credentials at the token endpoint (every scope the client has, or <paramref name="scope"/>).</summary>
    public static async Task<string> ClientCredentialsAsync(HttpClient http, string clientId, string secret, string? scope = null)
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null)
        {
            form["scope"] = scope;
        }

        using var response = await http.PostAsync(new Uri("connect/token", UriKind.Relative), new FormUrlEncodedContent(form));
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The token endpoint answered {(int)response.StatusCode}: {text}");
        }

        return JsonNode.Parse(text)!["access_token"]!.GetValue<string>();
    }

    /// <summary>A token of a new admin client (every scope) of the server at <paramref name="http"/>'s base address.</summary>
    public static async Task<string> AdminTokenAsync(HttpClient http, string dataDirectory, string? database = null)
    {
        var (id, secret) = await AddClientAsync(Location(dataDirectory, database), "--name", "tests-admin", "--admin");
        return await ClientCredentialsAsync(http, id, secret);
    }
}
