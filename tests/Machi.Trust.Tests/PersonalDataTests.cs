using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Stream;
using Machi.Trust.Tests.Infrastructure;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Data.Sqlite;
using static Machi.Trust.Tests.Infrastructure.Oidc;

namespace Machi.Trust.Tests;

/// <summary>
/// The platform's rule for personal data, end to end over real HTTP with real tokens: a resident's entity is seen by the
/// resident, by a service only while the resident's consent (given on the consent page) is active and for its purpose,
/// and by nobody else — not another resident, not an admin token; every access by a service is in the resident's
/// hash-chained access log, which <c>machi audit verify</c> checks. Run on each backend (…OnSqlite, …OnPostgres).
/// </summary>
public abstract class PersonalDataTests(Backend backend)
{
    protected const string Password = "tsurugajo-2026";
    protected const string Owner = "https://machi.city/ns/owner";
    protected const string Category = "https://machi.city/ns/dataCategory";
    protected const string Entities = "ngsi-ld/v1/entities";

    protected sealed record City(MachiServer Server, string AppId, string ServiceId, string ServiceToken, string ResidentA, string TokenA, string TokenB)
    {
        public HttpClient Http => Server.Anonymous;
    }

    /// <summary>A city with two residents, a resident app and a clinic service; on <paramref name="server"/> when given, else on a new server of the backend.</summary>
    protected async Task<City> StartAsync(MachiServer? server = null)
    {
        server ??= await backend.StartAsync();
        var a = await AddUserAsync(server, "resident", "hanako@example.jp", Password);
        await AddUserAsync(server, "resident", "taro@example.jp", Password);
        var (app, _) = await AddClientAsync(server, "--name", "Aizu app", "--public", "--scope", "openid ngsi:read ngsi:write", "--redirect-uri", RedirectUri.AbsoluteUri);
        var (service, secret) = await AddClientAsync(server, "--name", "Clinic Tsuruga", "--scope", "ngsi:read ngsi:write", "--redirect-uri", RedirectUri.AbsoluteUri,
            "--operator", "Tsuruga Clinic Corp.", "--purpose", "monitoring", "--category", "vitals,location");
        var serviceToken = await ClientCredentialsTokenAsync(server.Anonymous, service, secret!);
        var tokenA = (await SignInAsync(server, app, null, "hanako@example.jp", Password, "openid ngsi:read ngsi:write"))["access_token"]!.GetValue<string>();
        var tokenB = (await SignInAsync(server, app, null, "taro@example.jp", Password, "openid ngsi:read ngsi:write"))["access_token"]!.GetValue<string>();
        return new City(server, app, service, serviceToken, a, tokenA, tokenB);
    }

    protected static string BloodPressure(string id, string owner) => $$$"""
        {"id":"{{{id}}}","type":"BloodPressureObservation","systolic":{"type":"Property","value":128},
         "{{{Owner}}}":{"type":"Property","value":"{{{owner}}}"},"{{{Category}}}":{"type":"Property","value":"vitals"}}
        """;

    protected static async Task<(HttpStatusCode Status, string Body, string? Count)> GetAsync(HttpClient http, string path, string? token, string? purpose = null)
    {
        using var response = await SendAsync(http, HttpMethod.Get, path, token, purpose: purpose);
        var count = response.Headers.TryGetValues("NGSILD-Results-Count", out var values) ? values.First() : null;
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), count);
    }

    /// <summary>Signs the resident in with a browser, opens the service's opt-in URL and agrees; the consent id.</summary>
    protected static Task<string> ConsentOnThePageAsync(City city, string email, string purpose, string categories) =>
        Oidc.ConsentOnThePageAsync(city.Server, city.ServiceId, "Clinic Tsuruga", email, Password, purpose, categories);

    [Fact]
    public async Task A_service_sees_a_residents_vitals_only_while_the_resident_consents_for_that_purpose_and_every_access_is_logged()
    {
        var city = await StartAsync();
        await using var owned = city.Server;
        const string id = "urn:ngsi-ld:BloodPressureObservation:hanako-1";

        // The resident stores her own reading; an admin token cannot store a resident's data without her consent.
        using (var created = await SendAsync(city.Http, HttpMethod.Post, Entities, city.TokenA, BloodPressure(id, city.ResidentA)))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        using (var forged = await SendAsync(city.Http, HttpMethod.Post, Entities, city.Server.AdminToken,
            BloodPressure("urn:ngsi-ld:BloodPressureObservation:hanako-2", city.ResidentA)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, forged.StatusCode);
        }

        // The refused creation left nothing behind, not even for the resident it named.
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/urn:ngsi-ld:BloodPressureObservation:hanako-2", city.TokenA)).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(city.Http, $"{Entities}/{id}", city.TokenA)).Status);

        // Nobody else sees it: not the service (no consent yet), not another resident guessing the id, not an admin,
        // and a query reveals not even a count.
        const string query = Entities + "?type=BloodPressureObservation&count=true";
        foreach (var token in new[] { city.ServiceToken, city.TokenB, city.Server.AdminToken })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/{id}", token, purpose: "monitoring")).Status);
            var (status, body, count) = await GetAsync(city.Http, query, token, purpose: "monitoring");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("[]", body);
            Assert.Equal("0", count);
            var (_, crafted, _) = await GetAsync(city.Http, Entities + $"?idPattern=.*hanako.*&q=systolic>0", token, purpose: "monitoring");
            Assert.Equal("[]", crafted);
        }

        // A Relationship opens no way round it: joined through an entity the service may see, the reading stays out.
        const string visit = "urn:ngsi-ld:ClinicVisit:tsuruga-1";
        using (var visited = await SendAsync(city.Http, HttpMethod.Post, Entities, city.ServiceToken,
            $$$"""{"id":"{{{visit}}}","type":"ClinicVisit","reading":{"type":"Relationship","object":"{{{id}}}"}}"""))
        {
            Assert.Equal(HttpStatusCode.Created, visited.StatusCode);
        }

        foreach (var join in new[] { "flat", "inline" })
        {
            var (status, body, _) = await GetAsync(city.Http, $"{Entities}/{visit}?join={join}", city.ServiceToken, purpose: "monitoring");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.DoesNotContain("systolic", body, StringComparison.Ordinal);
        }

        // She opts in on the consent page; the service now sees it, for that purpose only.
        var consentId = await ConsentOnThePageAsync(city, "hanako@example.jp", "monitoring", "vitals");
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(city.Http, $"{Entities}/{id}", city.ServiceToken, purpose: "monitoring")).Status);
        var (_, listed, listedCount) = await GetAsync(city.Http, query, city.ServiceToken, purpose: "monitoring");
        Assert.Contains(id, listed, StringComparison.Ordinal);
        Assert.Equal("1", listedCount);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/{id}", city.ServiceToken, purpose: "marketing")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/{id}", city.ServiceToken)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/{id}", city.TokenB, purpose: "monitoring")).Status);
        var (_, joined, _) = await GetAsync(city.Http, $"{Entities}/{visit}?join=flat", city.ServiceToken, purpose: "monitoring");
        Assert.Equal([visit, id], JsonNode.Parse(joined)!.AsArray().Select(e => e!["id"]!.GetValue<string>()));

        // The resident sees who accessed her data (the join's read among it); the other resident sees nothing of it.
        var (_, log, _) = await GetAsync(city.Http, "api/access-log", city.TokenA);
        var records = JsonNode.Parse(log)!.AsArray();
        Assert.Equal(3, records.Count);
        Assert.All(records, r => Assert.Equal(city.ServiceId, r!["clientId"]!.GetValue<string>()));
        Assert.All(records, r => Assert.Equal("monitoring", r!["purpose"]!.GetValue<string>()));
        Assert.Contains(records, r => r!["operation"]!.GetValue<string>() == "read" && r["entityId"]!.GetValue<string>() == id);
        Assert.Equal("[]", (await GetAsync(city.Http, "api/access-log", city.TokenB)).Body);

        // She revokes; the very next request of the service is refused, and she gets a receipt of the revocation.
        using (var revoked = await SendAsync(city.Http, HttpMethod.Delete, $"api/consents/{Uri.EscapeDataString(consentId)}", city.TokenA))
        {
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
            var receipt = JsonNode.Parse(await revoked.Content.ReadAsStringAsync())!;
            Assert.Equal("revoked", receipt["machiConsentStatus"]!.GetValue<string>());
            Assert.Equal(city.ResidentA, receipt["piiPrincipalId"]!.GetValue<string>());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/{id}", city.ServiceToken, purpose: "monitoring")).Status);
        Assert.Equal("0", (await GetAsync(city.Http, query, city.ServiceToken, purpose: "monitoring")).Count);
        var (_, grant, _) = await GetAsync(city.Http, $"api/consents/{Uri.EscapeDataString(consentId)}/receipt", city.TokenA);
        Assert.Equal("granted", JsonNode.Parse(grant)!["machiConsentStatus"]!.GetValue<string>());

        // The log verifies; changing one record is detected.
        Assert.Contains("intact: 3 records", await MachiAsync(["audit", "verify", .. Tokens.Location(city.Server.DataDirectory, city.Server.Database)]), StringComparison.Ordinal);
        // SQLite stores each record's bytes whole: the purpose is rewritten inside them, its length kept.
        await TamperAsync(city.Server, "UPDATE access_log SET client_id = 'someone-innocent' WHERE seq = 1",
            "UPDATE access_log SET record = unhex(replace(hex(record), hex('monitoring'), hex('marketing!'))) WHERE seq = 1");
        using var output = new StringWriter();
        using var errors = new StringWriter();
        Assert.Equal(1, await Machi.Host.Cli.MachiCli.RunAsync(["audit", "verify", .. Tokens.Location(city.Server.DataDirectory, city.Server.Database)], output, errors));
        Assert.Contains("record 1", errors.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Changes the stored access log behind Machi's back, as an intruder with database access would (<paramref name="sqliteSql"/> on SQLite when given).</summary>
    protected static async Task TamperAsync(MachiServer server, string sql, string? sqliteSql = null)
    {
        if (server.Database is { } database)
        {
            await using var pg = new Npgsql.NpgsqlConnection(database);
            await pg.OpenAsync();
            await using var change = new Npgsql.NpgsqlCommand(sql, pg);
            await change.ExecuteNonQueryAsync();
            return;
        }

        using var db = new SqliteConnection($"Data Source={Path.Combine(server.DataDirectory, "access-log.db")};Pooling=false");
        await db.OpenAsync();
        using var tamper = db.CreateCommand();
        tamper.CommandText = sqliteSql ?? sql;
        Assert.Equal(1, await tamper.ExecuteNonQueryAsync());
    }

    [Fact]
    public async Task Anonymous_callers_read_only_public_data_and_no_one_writes_without_the_write_scope()
    {
        var city = await StartAsync();
        await using var owned = city.Server;
        using (var internalEntity = await SendAsync(city.Http, HttpMethod.Post, Entities, city.Server.AdminToken,
            """{"id":"urn:ngsi-ld:Facility:water-plant","type":"Facility","capacity":{"type":"Property","value":5}}"""))
        {
            Assert.Equal(HttpStatusCode.Created, internalEntity.StatusCode);
        }

        using (var publicEntity = await SendAsync(city.Http, HttpMethod.Post, Entities, city.Server.AdminToken,
            """{"id":"urn:ngsi-ld:Facility:shelter-1","type":"Facility","capacity":{"type":"Property","value":300},"https://machi.city/ns/visibility":{"type":"Property","value":"public"}}"""))
        {
            Assert.Equal(HttpStatusCode.Created, publicEntity.StatusCode);
        }

        var (status, body, count) = await GetAsync(city.Http, Entities + "?type=Facility&count=true", token: null);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("shelter-1", body, StringComparison.Ordinal);
        Assert.DoesNotContain("water-plant", body, StringComparison.Ordinal);
        Assert.Equal("1", count);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/urn:ngsi-ld:Facility:water-plant", null)).Status);
        Assert.Equal("2", (await GetAsync(city.Http, Entities + "?type=Facility&count=true", city.ServiceToken)).Count);

        const string entity = """{"id":"urn:ngsi-ld:Facility:x","type":"Facility"}""";
        using (var anonymous = await SendAsync(city.Http, HttpMethod.Post, Entities, null, entity))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Contains("Unauthorized", await anonymous.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var (readerId, readerSecret) = await AddClientAsync(city.Server, "--name", "Open data portal", "--scope", "ngsi:read");
        var readerToken = await ClientCredentialsTokenAsync(city.Http, readerId, readerSecret!);
        using (var reader = await SendAsync(city.Http, HttpMethod.Post, Entities, readerToken, entity))
        {
            Assert.Equal(HttpStatusCode.Forbidden, reader.StatusCode);
        }

        // Tokens that are not this city's valid tokens are refused, not taken as anonymous.
        var parts = city.ServiceToken.Split('.');
        var unsigned = WebEncoders.Base64UrlEncode("""{"alg":"none","typ":"at+jwt"}"""u8.ToArray()) + "." + parts[1] + ".";
        foreach (var bad in new[] { "not-a-token", unsigned, parts[0] + "." + parts[1] + "." + WebEncoders.Base64UrlEncode(new byte[256]) })
        {
            var (badStatus, _, _) = await GetAsync(city.Http, Entities + "?type=Facility", bad);
            Assert.Equal(HttpStatusCode.Unauthorized, badStatus);
        }

    }

    /// <summary>An HTTP client that calls with a token (and a declared purpose), for streams that live longer than one request.</summary>
    private static HttpClient CallerClient(City city, string? token, string? purpose = null)
    {
        var http = new HttpClient { BaseAddress = city.Server.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        if (token is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (purpose is not null)
        {
            http.DefaultRequestHeaders.Add("Machi-Purpose", purpose);
        }

        return http;
    }

    [Fact]
    public async Task Event_streams_and_subscriptions_carry_a_residents_changes_only_to_her_and_to_a_service_while_she_consents()
    {
        var city = await StartAsync();
        await using var owned = city.Server;
        const string id = "urn:ngsi-ld:BloodPressureObservation:hanako-5";
        using (var created = await SendAsync(city.Http, HttpMethod.Post, Entities, city.TokenA, BloodPressure(id, city.ResidentA)))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        async Task SetSystolicAsync(int value)
        {
            using var patched = await SendAsync(city.Http, HttpMethod.Patch, $"{Entities}/{id}/attrs", city.TokenA, $$$"""{"systolic":{"type":"Property","value":{{{value}}}}}""");
            Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);
        }

        // Streams of the personal type and a service's subscription, opened before any consent. (A stream is read until
        // a wait for its next event times out, which closes it; each phase opens the streams it checks.)
        const string stream = "ngsi-ld/v1/x-machi/stream?type=BloodPressureObservation";
        using var ownerHttp = CallerClient(city, city.TokenA);
        using var serviceHttp = CallerClient(city, city.ServiceToken, "monitoring");
        using var otherHttp = CallerClient(city, city.TokenB);
        using var anonymousHttp = CallerClient(city, null);
        async Task<EventStreamClient[]> OthersAsync() =>
            [await EventStreamClient.OpenAsync(serviceHttp, stream), await EventStreamClient.OpenAsync(otherHttp, stream), await EventStreamClient.OpenAsync(anonymousHttp, stream)];
        static async Task NothingAsync(IEnumerable<EventStreamClient> streams)
        {
            foreach (var quiet in streams)
            {
                await using (quiet)
                {
                    var received = await Record.ExceptionAsync(() => quiet.NextAsync(TimeSpan.FromMilliseconds(500)));
                    Assert.True(received is TimeoutException, $"a stream that may not see her data received {received?.Message ?? "an event"}");
                }
            }
        }

        await using var ownerStream = await EventStreamClient.OpenAsync(ownerHttp, stream);
        var before = await OthersAsync();
        await using var receiver = await NotificationReceiver.StartAsync();
        using (var subscribed = await SendAsync(serviceHttp, HttpMethod.Post, "ngsi-ld/v1/subscriptions", null,
            """{"type":"Subscription","entities":[{"type":"BloodPressureObservation"}],"notification":{"endpoint":{"uri":""" + $"\"{receiver.Url}\"" + "}}}"))
        {
            Assert.Equal(HttpStatusCode.Created, subscribed.StatusCode);
        }

        // Without consent: the owner's stream has the change; the service's, another resident's and an anonymous one
        // do not, and the service is not notified.
        await SetSystolicAsync(131);
        Assert.Equal(131, (await ownerStream.NextAsync(TimeSpan.FromSeconds(10))).Json["systolic"]!["value"]!.GetValue<int>());
        await NothingAsync(before);
        await receiver.AssertNoMoreThanAsync(0, TimeSpan.FromSeconds(1));

        // With her consent for that purpose the service's stream and subscription carry her next change; still nobody else's.
        var during = await OthersAsync();
        await using var serviceStream = during[0];
        var consentId = await ConsentOnThePageAsync(city, "hanako@example.jp", "monitoring", "vitals");
        await SetSystolicAsync(133);
        Assert.Equal(133, (await ownerStream.NextAsync(TimeSpan.FromSeconds(10))).Json["systolic"]!["value"]!.GetValue<int>());
        Assert.Equal(133, (await serviceStream.NextAsync(TimeSpan.FromSeconds(10))).Json["systolic"]!["value"]!.GetValue<int>());
        var notified = await receiver.WaitForAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal(id, notified[0].Entity["id"]!.GetValue<string>());
        await NothingAsync(during[1..]);

        // Revoked: the very next change reaches only her.
        using (var revoked = await SendAsync(city.Http, HttpMethod.Delete, $"api/consents/{Uri.EscapeDataString(consentId)}", city.TokenA))
        {
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        }

        await SetSystolicAsync(135);
        Assert.Equal(135, (await ownerStream.NextAsync(TimeSpan.FromSeconds(10))).Json["systolic"]!["value"]!.GetValue<int>());
        await receiver.AssertNoMoreThanAsync(1, TimeSpan.FromSeconds(1));
        var after = await Record.ExceptionAsync(() => serviceStream.NextAsync(TimeSpan.FromMilliseconds(500)));
        Assert.True(after is TimeoutException, $"the service's stream still received {after?.Message ?? "an event"}");
    }

    [Fact]
    public async Task A_resident_exports_everything_about_her_then_erasure_leaves_only_the_record_that_it_happened()
    {
        var city = await StartAsync();
        await using var owned = city.Server;
        const string id = "urn:ngsi-ld:BloodPressureObservation:hanako-9";
        using (var created = await SendAsync(city.Http, HttpMethod.Post, Entities, city.TokenA, BloodPressure(id, city.ResidentA)))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        await ConsentOnThePageAsync(city, "hanako@example.jp", "monitoring", "vitals");
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(city.Http, $"{Entities}/{id}", city.ServiceToken, purpose: "monitoring")).Status);

        var export = JsonNode.Parse((await GetAsync(city.Http, "api/me/data", city.TokenA)).Body)!;
        Assert.Equal(city.ResidentA, export["subject"]!.GetValue<string>());
        Assert.Equal(id, export["entities"]!.AsArray().Single()!["id"]!.GetValue<string>());
        Assert.Equal("KI-CR-v1.1.0", export["consents"]!.AsArray().Single()!["receipt"]!["version"]!.GetValue<string>());
        Assert.Single(export["accessLog"]!.AsArray());

        using (var erased = await SendAsync(city.Http, HttpMethod.Delete, "api/me/data", city.TokenA))
        {
            Assert.Equal(HttpStatusCode.OK, erased.StatusCode);
            var result = JsonNode.Parse(await erased.Content.ReadAsStringAsync())!;
            Assert.Equal(1, result["deletedEntities"]!.GetValue<int>());
            Assert.Equal(1, result["deletedConsents"]!.GetValue<int>());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"{Entities}/{id}", city.TokenA)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(city.Http, $"ngsi-ld/v1/temporal/entities/{id}", city.TokenA)).Status);
        Assert.Equal("[]", (await GetAsync(city.Http, "api/consents", city.TokenA)).Body);
        var after = JsonNode.Parse((await GetAsync(city.Http, "api/me/data", city.TokenA)).Body)!;
        Assert.Empty(after["entities"]!.AsArray());
        Assert.Equal("erasure", after["accessLog"]!.AsArray().Single()!["operation"]!.GetValue<string>());
        Assert.Contains("intact: 2 records (1 redacted", await MachiAsync(["audit", "verify", .. Tokens.Location(city.Server.DataDirectory, city.Server.Database)]), StringComparison.Ordinal);
    }
}

public sealed class PersonalDataTestsOnSqlite() : PersonalDataTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class PersonalDataTestsOnPostgres(PostgresServer postgres) : PersonalDataTests(Backend.Postgres(postgres))
{
    /// <summary>
    /// Two nodes on one database: a consent given through one node opens the resident's entity to the service on the
    /// other (its cached grants are read again when the consent is announced), and its revocation closes it there.
    /// </summary>
    [Fact]
    public async Task A_consent_given_through_one_node_opens_the_data_on_another_and_its_revocation_closes_it_there()
    {
        var database = await postgres.CreateDatabaseAsync("consent_nodes");
        var city = await StartAsync(await MachiServer.StartAsync(settings: new Dictionary<string, string?> { ["Broker:Database"] = database, ["Broker:NodeName"] = "node-a" }));
        await using var first = city.Server;
        await using var second = await MachiServer.StartAsync(settings: new Dictionary<string, string?> { ["Broker:Database"] = database, ["Broker:NodeName"] = "node-b" });
        const string id = "urn:ngsi-ld:BloodPressureObservation:hanako-nodes";
        using (var created = await SendAsync(city.Http, HttpMethod.Post, Entities, city.TokenA, BloodPressure(id, city.ResidentA)))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        const string query = Entities + "?type=BloodPressureObservation&count=true";
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(second.Anonymous, $"{Entities}/{id}", city.ServiceToken, purpose: "monitoring")).Status);
        Assert.Equal("0", (await GetAsync(second.Anonymous, query, city.ServiceToken, purpose: "monitoring")).Count);

        var consentId = await ConsentOnThePageAsync(city, "hanako@example.jp", "monitoring", "vitals");
        Assert.Equal("1", (await GetAsync(second.Anonymous, query, city.ServiceToken, purpose: "monitoring")).Count);
        Assert.Equal(HttpStatusCode.OK, await EventuallyAsync(second, $"{Entities}/{id}", city.ServiceToken, HttpStatusCode.OK));
        Assert.Equal("0", (await GetAsync(second.Anonymous, query, city.TokenB, purpose: "monitoring")).Count);

        using (var revoked = await SendAsync(city.Http, HttpMethod.Delete, $"api/consents/{Uri.EscapeDataString(consentId)}", city.TokenA))
        {
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        }

        Assert.Equal("0", (await GetAsync(second.Anonymous, query, city.ServiceToken, purpose: "monitoring")).Count);
        Assert.Equal(HttpStatusCode.NotFound, await EventuallyAsync(second, $"{Entities}/{id}", city.ServiceToken, HttpStatusCode.NotFound));

        // The service's reads were logged by the node that served them, in that node's chain of the shared log.
        var (_, log, _) = await GetAsync(first.Anonymous, "api/access-log", city.TokenA);
        Assert.Contains(JsonNode.Parse(log)!.AsArray(), r => r!["node"]!.GetValue<string>() == "node-b" && r["entityId"]!.GetValue<string>() == id);
        string[] verify = ["audit", "verify", .. Tokens.Location(first.DataDirectory, database)];
        Assert.Contains("access log intact", await MachiAsync(verify), StringComparison.Ordinal);
        await TamperAsync(first, "UPDATE access_log SET purpose = 'research' WHERE node = 'node-b' AND seq = 1");
        using var output = new StringWriter();
        using var errors = new StringWriter();
        Assert.Equal(1, await Machi.Host.Cli.MachiCli.RunAsync(verify, output, errors));
        Assert.Contains("record 1 of node node-b was altered", errors.ToString(), StringComparison.Ordinal);
    }

    /// <summary>The status of a read once it is <paramref name="expected"/>, or the last one after 10 s (the announcement travels through the database).</summary>
    private static async Task<HttpStatusCode> EventuallyAsync(MachiServer node, string path, string token, HttpStatusCode expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var (status, _, _) = await GetAsync(node.Anonymous, path, token, purpose: "monitoring");
            if (status == expected || DateTime.UtcNow > deadline)
            {
                return status;
            }

            await Task.Delay(100);
        }
    }
}
