using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Machi.Broker.Access;
using Machi.Host.Cli;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>
/// Moving a city (<c>machi export</c> / <c>machi import</c>): a SQLite city filled over HTTP is exported, imported into
/// PostgreSQL, served there, exported again and imported into a fresh SQLite data directory; each time every API
/// answers as it did before the move, the resident still signs in with her password, the clients still get tokens
/// with their secrets, the service still sees what she consented to, and the access log's hash chain verifies.
/// </summary>
[Collection(PostgresGroup.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CityMoveTests(PostgresServer postgres) : IDisposable
{
    private const string Password = "tsurugajo-2026";
    private const string Email = "hanako@example.jp";
    private const string Tenant = "aizu";
    private const string Entities = "ngsi-ld/v1/entities";
    private const string Reading = "urn:ngsi-ld:BloodPressureObservation:hanako-1";
    private readonly string _root = TempDirectory.Create("machi-move-");

    public void Dispose() => TempDirectory.Delete(_root);

    /// <summary>Who must still get in after a move: the resident app (public), the clinic service and an admin client.</summary>
    private sealed record Credentials(string App, string Service, string ServiceSecret, string Admin, string AdminSecret, string Resident);

    [Fact]
    public async Task A_city_moved_to_PostgreSQL_and_back_to_SQLite_answers_as_before_and_its_access_log_verifies()
    {
        var sqlite = Path.Combine(_root, "sqlite");
        Credentials city;
        Dictionary<string, string> before;
        await using (var server = await MachiServer.StartAsync(sqlite))
        {
            city = await FillAsync(server);
            before = await AnswersAsync(server, city);
        }

        // SQLite → PostgreSQL.
        var toPostgres = Path.Combine(_root, "to-postgres");
        var exported = await MachiAsync("export", "--data", sqlite, "--out", toPostgres);
        Assert.Contains("entities", exported, StringComparison.Ordinal);
        var database = await postgres.CreateDatabaseAsync("moved");
        var onPostgres = Path.Combine(_root, "postgres-node");
        await MachiAsync("import", "--in", toPostgres, "--data", onPostgres, "--database", database);
        Assert.Contains("access log intact", await MachiAsync("audit", "verify", "--data", onPostgres, "--database", database), StringComparison.Ordinal);
        await using (var server = await MachiServer.StartAsync(onPostgres, new Dictionary<string, string?> { ["Broker:Database"] = database }))
        {
            AssertSame(before, await AnswersAsync(server, city));
            await AssertTheServiceStillSeesWhatWasConsentedAsync(server, city);
        }

        // PostgreSQL → a fresh SQLite data directory.
        var back = Path.Combine(_root, "back");
        await MachiAsync("export", "--data", onPostgres, "--database", database, "--out", back);
        var sqliteAgain = Path.Combine(_root, "sqlite-again");
        await MachiAsync("import", "--in", back, "--data", sqliteAgain);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(sqliteAgain)); // residents' data: owner alone
        Assert.Contains("access log intact", await MachiAsync("audit", "verify", "--data", sqliteAgain), StringComparison.Ordinal);
        await using (var server = await MachiServer.StartAsync(sqliteAgain))
        {
            var after = await AnswersAsync(server, city);
            foreach (var (path, answer) in before.Where(a => a.Key != "api/access-log"))
            {
                Assert.True(answer == after[path], $"{path}\nbefore: {answer}\nafter:  {after[path]}");
            }

            // The log holds, beyond the original records, the service's reads on PostgreSQL, still in one chain.
            Assert.True(JsonNode.Parse(after["api/access-log"])!.AsArray().Count > JsonNode.Parse(before["api/access-log"])!.AsArray().Count);
            await AssertTheServiceStillSeesWhatWasConsentedAsync(server, city);
        }

        Assert.Contains("access log intact", await MachiAsync("audit", "verify", "--data", sqliteAgain), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Import_refuses_a_target_that_holds_a_city_and_writes_nothing()
    {
        var archive = await SmallArchiveAsync();
        var target = Path.Combine(_root, "target");
        await MachiAsync("import", "--in", archive, "--data", target);

        var (code, error) = await FailingAsync("import", "--in", archive, "--data", target);
        Assert.Equal(1, code);
        Assert.Contains("already holds data", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);

        var database = await postgres.CreateDatabaseAsync("occupied");
        await MachiAsync("import", "--in", archive, "--data", Path.Combine(_root, "node"), "--database", database);
        (code, error) = await FailingAsync("import", "--in", archive, "--data", Path.Combine(_root, "node"), "--database", database);
        Assert.Equal(1, code);
        Assert.Matches(@"already holds data \(terms, entities, .*trust_users", error);
        await using var pg = new Npgsql.NpgsqlConnection(database);
        await pg.OpenAsync();
        await using var count = new Npgsql.NpgsqlCommand("SELECT count(*) FROM entities", pg);
        Assert.Equal(2L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Import_refuses_a_tampered_missing_or_foreign_archive_before_writing_anything()
    {
        var archive = await SmallArchiveAsync();
        var entities = Path.Combine(archive, "entities.jsonl");
        var original = await File.ReadAllTextAsync(entities);
        await File.WriteAllTextAsync(entities, original.Replace("Vehicle", "Vehicla", StringComparison.Ordinal));
        var target = Path.Combine(_root, "target");
        var (code, error) = await FailingAsync("import", "--in", archive, "--data", target);
        Assert.Equal(1, code);
        Assert.Contains("part 'entities' (entities.jsonl) does not match its checksum", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(target), "nothing is written for an archive that does not verify");
        await File.WriteAllTextAsync(entities, original);

        var manifest = Path.Combine(archive, "manifest.json");
        var text = await File.ReadAllTextAsync(manifest);
        await File.WriteAllTextAsync(manifest, text.Replace("\"formatVersion\": 1", "\"formatVersion\": 99", StringComparison.Ordinal));
        (code, error) = await FailingAsync("import", "--in", archive, "--data", target);
        Assert.Equal(1, code);
        Assert.Contains("format version 99", error, StringComparison.Ordinal);

        (code, error) = await FailingAsync("import", "--in", Path.Combine(_root, "nowhere"), "--data", target);
        Assert.Equal(1, code);
        Assert.Contains("no archive at", error, StringComparison.Ordinal);

        (code, error) = await FailingAsync("export", "--data", Path.Combine(_root, "no-city"), "--out", Path.Combine(_root, "out"));
        Assert.Equal(1, code);
        Assert.Contains("machi.db is missing", error, StringComparison.Ordinal);

        (code, error) = await FailingAsync("export", "--data", Path.Combine(_root, "small"), "--out", archive);
        Assert.Equal(1, code);
        Assert.Contains("not empty", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public async Task A_redacted_access_log_keeps_its_chain_on_PostgreSQL_and_back_and_chains_that_cannot_map_are_refused()
    {
        var data = Path.Combine(_root, "logged");
        await AddUserAsync(data, "resident", Email, Password);
        static AccessRecord Read(string resident, string operation = "read") =>
            new(DateTimeOffset.UtcNow, resident, "clinic", null, "monitoring", null, operation, "", "urn:ngsi-ld:BloodPressureObservation:1", null, "node-a");
        // Exported while the log is open, as beside a running server: its last record may still be only in the journal.
        var archive = Path.Combine(_root, "log-archive");
        await using (var log = new SqliteAccessLog(Path.Combine(data, "access-log.db")))
        {
            await log.AppendAsync([Read("resident-1"), Read("resident-2"), Read("resident-1")]);
            await log.RedactAsync("resident-1", Read("resident-1", "erasure"));
            await log.AppendAsync([Read("resident-2")]);
            await MachiAsync("export", "--data", data, "--out", archive);
        }

        const string Intact = "access log intact: 5 records (2 redacted at residents' request)";
        Assert.Contains(Intact, await MachiAsync("audit", "verify", "--data", data), StringComparison.Ordinal);
        var database = await postgres.CreateDatabaseAsync("logged");
        var node = Path.Combine(_root, "log-node");
        await MachiAsync("import", "--in", archive, "--data", node, "--database", database);
        Assert.Contains(Intact, await MachiAsync("audit", "verify", "--data", node, "--database", database), StringComparison.Ordinal);

        var back = Path.Combine(_root, "log-back");
        await MachiAsync("export", "--data", node, "--database", database, "--out", back);
        await MachiAsync("import", "--in", back, "--data", Path.Combine(_root, "log-sqlite"));
        Assert.Contains(Intact, await MachiAsync("audit", "verify", "--data", Path.Combine(_root, "log-sqlite")), StringComparison.Ordinal);

        // One SQLite chain naming two nodes cannot become PostgreSQL's chains (one per node) without breaking.
        var manifest = Path.Combine(archive, "manifest.json");
        var text = await File.ReadAllTextAsync(manifest);
        Assert.Contains("\"node-a\"", text, StringComparison.Ordinal);
        await File.WriteAllTextAsync(manifest, text.Replace("\"node-a\"", "\"node-a\", \"node-b\"", StringComparison.Ordinal));
        var (code, error) = await FailingAsync("import", "--in", archive, "--data", node, "--database", await postgres.CreateDatabaseAsync("two_nodes"));
        Assert.Equal(1, code);
        Assert.Contains("several nodes (node-a, node-b)", error, StringComparison.Ordinal);
    }

    /// <summary>The archive of a city with an account, a client and two entities, written without a server.</summary>
    private async Task<string> SmallArchiveAsync()
    {
        var data = Path.Combine(_root, "small");
        await using (var server = await MachiServer.StartAsync(data))
        {
            await AddUserAsync(server, "resident", Email, Password);
            foreach (var id in (string[])["urn:ngsi-ld:Vehicle:a", "urn:ngsi-ld:Vehicle:b"])
            {
                Assert.Equal(HttpStatusCode.Created, (await server.Client.PostJson(Entities, NgsiHttp.Vehicle(id))).StatusCode);
            }
        }

        var archive = Path.Combine(_root, "small-archive");
        await MachiAsync("export", "--data", data, "--out", archive);
        return archive;
    }

    private static async Task<(int Code, string Error)> FailingAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await MachiCli.RunAsync(args, output, errors);
        return (code, errors.ToString());
    }

    /// <summary>Fills a city through its APIs: accounts and clients, entities of two tenants with history, a resident's own reading and her consent, a subscription, a registration, a hosted @context.</summary>
    private static async Task<Credentials> FillAsync(MachiServer server)
    {
        var resident = await AddUserAsync(server, "resident", Email, Password);
        var (app, _) = await AddClientAsync(server, "--name", "Aizu app", "--public", "--scope", "openid ngsi:read ngsi:write", "--redirect-uri", RedirectUri.AbsoluteUri);
        var (service, secret) = await AddClientAsync(server, "--name", "Clinic Tsuruga", "--scope", "ngsi:read", "--redirect-uri", RedirectUri.AbsoluteUri,
            "--operator", "Tsuruga Clinic Corp.", "--purpose", "monitoring", "--category", "vitals");
        var (admin, adminSecret) = await AddClientAsync(server, "--name", "mover", "--admin");
        var city = new Credentials(app, service, secret!, admin, adminSecret!, resident);
        using var http = await AdminAsync(server, city);

        foreach (var tenant in (string?[])[null, Tenant])
        {
            for (var i = 0; i < 12; i++)
            {
                using var create = Request(HttpMethod.Post, Entities, tenant, NgsiHttp.Vehicle($"urn:ngsi-ld:Vehicle:v{i}", speed: i * 5));
                Assert.Equal(HttpStatusCode.Created, (await http.SendAsync(create)).StatusCode);
            }

            for (var speed = 1; speed <= 3; speed++)
            {
                using var update = Request(HttpMethod.Patch, $"{Entities}/urn:ngsi-ld:Vehicle:v1/attrs", tenant,
                    $$$"""{"speed":{"type":"Property","value":{{{speed * 11}}},"observedAt":"2026-11-25T08:0{{{speed}}}:00Z"}}""");
                Assert.Equal(HttpStatusCode.NoContent, (await http.SendAsync(update)).StatusCode);
            }

            using var delete = Request(HttpMethod.Delete, $"{Entities}/urn:ngsi-ld:Vehicle:v11", tenant);
            Assert.Equal(HttpStatusCode.NoContent, (await http.SendAsync(delete)).StatusCode);
        }

        var token = await ResidentTokenAsync(server, city);
        using (var own = Request(HttpMethod.Post, Entities, null, $$$"""
            {"id":"{{{Reading}}}","type":"BloodPressureObservation","systolic":{"type":"Property","value":128},
             "https://machi.city/ns/owner":{"type":"Property","value":"{{{resident}}}"},"https://machi.city/ns/dataCategory":{"type":"Property","value":"vitals"}}
            """, token))
        {
            Assert.Equal(HttpStatusCode.Created, (await server.Anonymous.SendAsync(own)).StatusCode);
        }

        await ConsentOnThePageAsync(server, service, "Clinic Tsuruga", Email, Password, "monitoring", "vitals");
        await AssertTheServiceStillSeesWhatWasConsentedAsync(server, city);

        var posts = new (string Path, string Body)[]
        {
            ("ngsi-ld/v1/subscriptions", """
                {"id":"urn:ngsi-ld:Subscription:fast","type":"Subscription","entities":[{"type":"Vehicle"}],"q":"speed>1000",
                 "notification":{"endpoint":{"uri":"http://127.0.0.1:9/notify","accept":"application/json"}}}
                """),
            ("ngsi-ld/v1/csourceRegistrations", """
                {"id":"urn:ngsi-ld:ContextSourceRegistration:shelters","type":"ContextSourceRegistration",
                 "information":[{"entities":[{"type":"Shelter"}]}],"endpoint":"http://127.0.0.1:9/broker"}
                """),
            ("ngsi-ld/v1/jsonldContexts", """{"@context":{"Plow":"https://machi.city/ns/Plow","blade":"https://machi.city/ns/blade"}}"""),
        };
        foreach (var (path, body) in posts)
        {
            using var response = await http.PostJson(path, body);
            Assert.True(response.StatusCode == HttpStatusCode.Created, $"{path}: {await response.Content.ReadAsStringAsync()}");
        }

        return city;
    }

    /// <summary>What the city's APIs answer, by path: entities (with system attributes) of both tenants, queries through every index, discovery, history, subscriptions, registrations, contexts, and the resident's own data, consents and access log.</summary>
    private static async Task<Dictionary<string, string>> AnswersAsync(MachiServer server, Credentials city)
    {
        using var admin = await AdminAsync(server, city);
        var resident = await ResidentTokenAsync(server, city);
        var answers = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] paths =
        [
            $"{Entities}?type=Vehicle&options=sysAttrs&limit=100",
            $"{Entities}?type=Vehicle&q=speed>30&count=true",
            $"{Entities}?type=Vehicle&georel=near%3BmaxDistance%3D%3D1000&geometry=Point&coordinates=%5B139.93%2C37.49%5D",
            "ngsi-ld/v1/types?details=true",
            "ngsi-ld/v1/attributes?details=true",
            "ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:v1?options=sysAttrs",
            "ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:v11",
            "ngsi-ld/v1/subscriptions",
            "ngsi-ld/v1/csourceRegistrations",
            "ngsi-ld/v1/jsonldContexts?details=true&kind=Hosted",
        ];
        foreach (var tenant in (string?[])[null, Tenant])
        {
            foreach (var path in paths)
            {
                answers[$"{tenant}/{path}"] = await AnswerAsync(admin, Request(HttpMethod.Get, path, tenant));
            }
        }

        foreach (var path in (string[])[$"{Entities}/{Reading}?options=sysAttrs", "api/consents", "api/access-log"])
        {
            answers[path] = await AnswerAsync(server.Anonymous, Request(HttpMethod.Get, path, null, token: resident));
        }

        return answers;
    }

    private static async Task<string> AnswerAsync(HttpClient http, HttpRequestMessage request)
    {
        using (request)
        using (var response = await http.SendAsync(request))
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{request.RequestUri}: {(int)response.StatusCode} {body}");

            // Links name the server they came from; the servers before and after a move listen on different ports.
            return body.Replace(http.BaseAddress!.AbsoluteUri, "BASE/", StringComparison.Ordinal);
        }
    }

    private static void AssertSame(Dictionary<string, string> before, Dictionary<string, string> after)
    {
        foreach (var (path, answer) in before)
        {
            Assert.True(answer == after[path], $"{path}\nbefore: {answer}\nafter:  {after[path]}");
        }
    }

    /// <summary>The clinic gets a token with its secret and reads the resident's reading for the purpose she consented to.</summary>
    private static async Task AssertTheServiceStillSeesWhatWasConsentedAsync(MachiServer server, Credentials city)
    {
        var token = await ClientCredentialsTokenAsync(server.Anonymous, city.Service, city.ServiceSecret);
        using var read = Request(HttpMethod.Get, $"{Entities}/{Reading}", null, token: token);
        read.Headers.Add("Machi-Purpose", "monitoring");
        using var response = await server.Anonymous.SendAsync(read);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>A client with the admin client's token, got with its secret (so on a moved city, with the moved secret hash).</summary>
    private static async Task<HttpClient> AdminAsync(MachiServer server, Credentials city)
    {
        var http = new HttpClient { BaseAddress = server.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await ClientCredentialsTokenAsync(server.Anonymous, city.Admin, city.AdminSecret));
        return http;
    }

    /// <summary>The resident signs in with her password (so on a moved city, against the moved password hash).</summary>
    private static async Task<string> ResidentTokenAsync(MachiServer server, Credentials city) =>
        (await SignInAsync(server, city.App, null, Email, Password, "openid ngsi:read ngsi:write"))["access_token"]!.GetValue<string>();

    private static HttpRequestMessage Request(HttpMethod method, string path, string? tenant, string? body = null, string? token = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (tenant is not null)
        {
            request.Headers.Add("NGSILD-Tenant", tenant);
        }

        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (body is not null)
        {
            request.Content = NgsiHttp.Json(body);
        }

        return request;
    }
}
