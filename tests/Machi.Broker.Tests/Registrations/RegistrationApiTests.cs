using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Registrations;

public abstract class RegistrationApiTests(Backend backend) : IAsyncLifetime
{
    private const string Path = "/ngsi-ld/v1/csourceRegistrations";
    private MachiServer _server = null!;

    private HttpClient Client => _server.Client;

    public async Task InitializeAsync() => _server = await backend.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static string Registration(string id, string information, string extra = "") => $$"""
        {"id":"{{id}}","type":"ContextSourceRegistration","information":{{information}},
         "endpoint":"http://kitakata.example:8080"{{extra}}}
        """;

    [Fact]
    public async Task Created_registration_is_returned_with_its_location_and_names_as_sent()
    {
        var body = Registration("urn:ngsi-ld:ContextSourceRegistration:kitakata",
            """[{"entities":[{"type":"Vehicle","idPattern":"urn:ngsi-ld:Vehicle:kitakata-.*"}],"propertyNames":["speed"],"relationshipNames":["operator"]}]""",
            """, "registrationName":"Kitakata plows","mode":"inclusive","operations":["retrieveOps"],"management":{"timeout":1500},"contextSourceInfo":[{"key":"city","value":"喜多方"}],"scope":"/Fukushima/Kitakata","expiresAt":"2099-01-01T00:00:00Z" """);
        var created = await Client.PostJson(Path, body);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(Path + "/urn:ngsi-ld:ContextSourceRegistration:kitakata", created.Headers.Location!.OriginalString);

        var got = await (await Client.GetAsync(created.Headers.Location.OriginalString + "?options=sysAttrs")).ReadJson();
        Assert.Equal("Vehicle", got["information"]![0]!["entities"]![0]!["type"]!.GetValue<string>());
        Assert.Equal("speed", got["information"]![0]!["propertyNames"]![0]!.GetValue<string>());
        Assert.Equal("喜多方", got["contextSourceInfo"]![0]!["value"]!.GetValue<string>());
        Assert.Equal(1500, got["management"]!["timeout"]!.GetValue<double>());
        Assert.Equal("/Fukushima/Kitakata", got["scope"]![0]!.GetValue<string>());
        Assert.NotNull(got["createdAt"]);

        var again = await Client.PostJson(Path, body);
        await again.AssertProblem(409, "AlreadyExists");
    }

    [Fact]
    public async Task A_registration_without_id_gets_one()
    {
        var created = await Client.PostJson(Path, """
            {"type":"ContextSourceRegistration","information":[{"entities":[{"type":"Shelter"}]}],"endpoint":"http://a.example"}
            """);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.StartsWith(Path + "/urn:ngsi-ld:ContextSourceRegistration:", created.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"ContextSourceRegistration","endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[],"endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"id":"urn:a:1"}]}],"endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T","id":"urn:a:1","idPattern":".*"}]}],"endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T","idPattern":"(unclosed"}]}],"endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}]}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"not a uri"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"ftp://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","mode":"sometimes"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","operations":["teleport"]}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","expiresAt":"2001-01-01T00:00:00Z"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","expiresAt":"soon"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","management":{"timeout":-1}}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","management":{"retries":3}}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","contextSourceInfo":[{"key":"a"}]}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","location":{"type":"Point","coordinates":[500,0]}}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","scope":"no-slash"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","tenant":"bad tenant"}""")]
    [InlineData("""{"type":"Subscription","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"color":"red"}],"endpoint":"http://a.example"}""")]
    [InlineData("""{"type":"ContextSourceRegistration","information":[{"entities":[{"type":"T"}]}],"endpoint":"http://a.example","observationInterval":{"startAt":"2026-02-01T00:00:00Z","endAt":"2026-01-01T00:00:00Z"}}""")]
    [InlineData("""["not","an","object"]""")]
    public async Task Invalid_registrations_are_BadRequestData(string body) =>
        await (await Client.PostJson(Path, body)).AssertProblem(400, "BadRequestData");

    [Fact]
    public async Task Mode_rules_exclusive_needs_entity_ids_and_attributes_auxiliary_only_reads()
    {
        await (await Client.PostJson(Path, """
            {"type":"ContextSourceRegistration","mode":"exclusive","information":[{"entities":[{"type":"Vehicle"}],"propertyNames":["speed"]}],"endpoint":"http://a.example"}
            """)).AssertProblem(400, "BadRequestData");
        await (await Client.PostJson(Path, """
            {"type":"ContextSourceRegistration","mode":"exclusive","information":[{"entities":[{"type":"Vehicle","id":"urn:ngsi-ld:Vehicle:1"}]}],"endpoint":"http://a.example"}
            """)).AssertProblem(400, "BadRequestData");
        await (await Client.PostJson(Path, """
            {"type":"ContextSourceRegistration","mode":"auxiliary","operations":["updateOps"],"information":[{"entities":[{"type":"Vehicle"}]}],"endpoint":"http://a.example"}
            """)).AssertProblem(400, "BadRequestData");
        await (await Client.PostJson(Path, """
            {"type":"ContextSourceRegistration","mode":"redirect","information":[{"propertyNames":["speed"]}],"endpoint":"http://a.example"}
            """)).AssertProblem(400, "BadRequestData");

        var exclusive = """
            {"type":"ContextSourceRegistration","mode":"exclusive","information":[{"entities":[{"type":"Vehicle","id":"urn:ngsi-ld:Vehicle:1"}],"propertyNames":["speed"]}],"endpoint":"http://a.example"}
            """;
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(Path, exclusive)).StatusCode);
        await (await Client.PostJson(Path, exclusive.Replace("a.example", "b.example", StringComparison.Ordinal))).AssertProblem(409, "Conflict");
    }

    [Fact]
    public async Task Update_replaces_members_and_keeps_the_registration_valid()
    {
        const string id = "urn:ngsi-ld:ContextSourceRegistration:upd";
        await Client.PostJson(Path, Registration(id, """[{"entities":[{"type":"Vehicle"}]}]"""));

        var patched = await Client.PatchJson(Path + "/" + id, """{"endpoint":"http://aizu.example:9000","registrationName":"renamed"}""");
        Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);
        var got = await (await Client.GetAsync(Path + "/" + id)).ReadJson();
        Assert.Equal("http://aizu.example:9000", got["endpoint"]!.GetValue<string>());
        Assert.Equal("renamed", got["registrationName"]!.GetValue<string>());
        Assert.Equal("Vehicle", got["information"]![0]!["entities"]![0]!["type"]!.GetValue<string>());

        // The result of the update must itself be a valid registration.
        await (await Client.PatchJson(Path + "/" + id, """{"mode":"exclusive"}""")).AssertProblem(400, "BadRequestData");
        await (await Client.PatchJson(Path + "/" + id, """{"id":"urn:ngsi-ld:ContextSourceRegistration:other"}""")).AssertProblem(400, "BadRequestData");
        await (await Client.PatchJson(Path + "/urn:ngsi-ld:ContextSourceRegistration:none", """{"registrationName":"x"}""")).AssertProblem(404, "ResourceNotFound");
    }

    [Fact]
    public async Task Delete_removes_and_unknown_ids_are_ResourceNotFound()
    {
        const string id = "urn:ngsi-ld:ContextSourceRegistration:del";
        await Client.PostJson(Path, Registration(id, """[{"entities":[{"type":"Vehicle"}]}]"""));
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(Path + "/" + id)).StatusCode);
        await (await Client.GetAsync(Path + "/" + id)).AssertProblem(404, "ResourceNotFound");
        await (await Client.DeleteAsync(Path + "/" + id)).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync(Path + "/not-a-uri")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Query_selects_by_entity_type_id_pattern_and_attributes_with_paging()
    {
        await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:q1",
            """[{"entities":[{"type":"Vehicle","id":"urn:ngsi-ld:Vehicle:plow-1"}],"propertyNames":["speed"]}]"""));
        await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:q2",
            """[{"entities":[{"type":"Vehicle","idPattern":"urn:ngsi-ld:Vehicle:kitakata-.*"}]}]"""));
        await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:q3",
            """[{"entities":[{"type":"Shelter"}],"propertyNames":["capacity"]}]"""));

        Assert.Equal(["q1", "q2"], await RegistrationIds("?type=Vehicle"));
        // q2 registers whole entities, so it may hold any attribute.
        Assert.Equal(["q1", "q2", "q3"], await RegistrationIds("?attrs=speed,capacity"));
        Assert.Equal(["q2", "q3"], await RegistrationIds("?attrs=capacity"));
        Assert.Equal(["q2"], await RegistrationIds("?type=Vehicle&id=urn:ngsi-ld:Vehicle:kitakata-7"));
        Assert.Equal(["q2", "q3"], await RegistrationIds("?id=urn:ngsi-ld:Vehicle:kitakata-7")); // q3 names no ids: any may be there
        Assert.Equal(["q1"], await RegistrationIds("?type=Vehicle&attrs=speed&id=urn:ngsi-ld:Vehicle:plow-1"));
        Assert.Equal(["q1", "q2"], await RegistrationIds("?idPattern=urn:ngsi-ld:Vehicle:plow-.*&attrs=speed"));
        Assert.Equal(["q2"], await RegistrationIds("?idPattern=urn:ngsi-ld:Vehicle:snow-.*&type=Vehicle"));
        Assert.Equal(["q1", "q2", "q3"], await RegistrationIds(""));

        var page = await Client.GetAsync(Path + "?limit=1&offset=1&count=true");
        Assert.Equal("3", page.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.Single((await page.ReadJson()).AsArray());

        await (await Client.GetAsync(Path + "?idPattern=(")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Path + "?limit=-1")).AssertProblem(400, "BadRequestData");
        // q selects the registrations whose sources could hold matching entities: those registering what q tests.
        Assert.Equal(["q1", "q2"], await RegistrationIds("?q=speed>30"));
        Assert.Equal(["q2", "q3"], await RegistrationIds("?q=capacity>100"));
        Assert.Equal(["q1", "q2", "q3"], await RegistrationIds("?q=speed>30|capacity>100"));
        Assert.Equal(["q2"], await RegistrationIds("?q=speed>30;capacity>100"));
        Assert.Equal(["q1", "q2", "q3"], await RegistrationIds("?q=!fuel"));
        Assert.Equal(["q2"], await RegistrationIds("?q=fuel"));
        await (await Client.GetAsync(Path + "?q=speed>>1")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Timerel_selects_registrations_by_their_observation_or_management_interval()
    {
        const string Info = """[{"entities":[{"type":"WeatherObserved"}]}]""";
        // Winter 2025–26 sensors, a station observing since 2026 with no end, one without an interval.
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:t1", Info,
            """, "observationInterval":{"startAt":"2025-12-01T00:00:00Z","endAt":"2026-03-31T00:00:00Z"}, "managementInterval":{"startAt":"2025-11-01T00:00:00Z","endAt":"2026-04-30T00:00:00Z"} """))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:t2", Info,
            """, "observationInterval":{"startAt":"2026-06-01T00:00:00Z"} """))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:t3", Info))).StatusCode);

        Assert.Equal(["t1", "t3"], await RegistrationIds("?timerel=before&timeAt=2026-01-01T00:00:00Z"));
        Assert.Equal(["t1", "t2", "t3"], await RegistrationIds("?timerel=after&timeAt=2026-01-01T00:00:00Z"));
        Assert.Equal(["t2", "t3"], await RegistrationIds("?timerel=after&timeAt=2026-05-01T00:00:00Z"));
        Assert.Equal(["t1", "t3"], await RegistrationIds("?timerel=between&timeAt=2026-03-01T00:00:00Z&endTimeAt=2026-05-01T00:00:00Z"));
        Assert.Equal(["t1", "t2", "t3"], await RegistrationIds("?timerel=between&timeAt=2026-03-01T00:00:00Z&endTimeAt=2026-07-01T00:00:00Z"));
        // The management interval ends a month later than the observation interval.
        Assert.Equal(["t1", "t2", "t3"], await RegistrationIds("?timeproperty=managementInterval&timerel=after&timeAt=2026-04-15T00:00:00Z"));
        Assert.Equal(["t2", "t3"], await RegistrationIds("?timeproperty=observationInterval&timerel=after&timeAt=2026-04-15T00:00:00Z"));

        await (await Client.GetAsync(Path + "?timerel=before")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Path + "?timerel=between&timeAt=2026-03-01T00:00:00Z")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Path + "?timerel=after&timeAt=2026-03-01T00:00:00Z&timeproperty=observedAt")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Csf_geoQ_and_scopeQ_select_registrations_by_their_own_members()
    {
        const string Info = """[{"entities":[{"type":"Vehicle"}]}]""";
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:c1", Info,
            """, "mode":"inclusive","contextSourceInfo":[{"key":"city","value":"喜多方"}],"scope":"/Fukushima/Kitakata","location":{"type":"Point","coordinates":[139.8747,37.6508]},"operator":{"type":"Property","value":"Kitakata City"}, "level": 2 """))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(Path, Registration("urn:ngsi-ld:ContextSourceRegistration:c2", Info,
            """, "mode":"auxiliary","operations":["retrieveOps"],"contextSourceInfo":[{"key":"city","value":"会津若松"}],"scope":"/Fukushima/Aizuwakamatsu/Kita","location":{"type":"Point","coordinates":[139.9298,37.4877]}, "level": 5 """))).StatusCode);

        Assert.Equal(["c1"], await RegistrationIds("?csf=" + Uri.EscapeDataString("mode==\"inclusive\"")));
        Assert.Equal(["c2"], await RegistrationIds("?csf=" + Uri.EscapeDataString("contextSourceInfo[city]==\"会津若松\"")));
        Assert.Equal(["c1"], await RegistrationIds("?csf=" + Uri.EscapeDataString("operator==\"Kitakata City\"")));
        Assert.Equal(["c1", "c2"], await RegistrationIds("?csf=" + Uri.EscapeDataString("level>=2")));
        Assert.Equal(["c2"], await RegistrationIds("?csf=" + Uri.EscapeDataString("level>2;mode==\"auxiliary\"")));
        Assert.Equal(["c2"], await RegistrationIds("?georel=" + Uri.EscapeDataString("near;maxDistance==2000") + "&geometry=Point&coordinates=" + Uri.EscapeDataString("[139.93,37.49]")));
        Assert.Equal(["c1"], await RegistrationIds("?scopeQ=" + Uri.EscapeDataString("/Fukushima/Kitakata")));
        Assert.Equal(["c1", "c2"], await RegistrationIds("?scopeQ=" + Uri.EscapeDataString("/Fukushima/#")));
        Assert.Equal(["c2"], await RegistrationIds("?scopeQ=" + Uri.EscapeDataString("/Fukushima/+/Kita")));
        var badCsf = await (await Client.GetAsync(Path + "?csf=" + Uri.EscapeDataString("mode=="))).AssertProblem(400, "BadRequestData");
        Assert.StartsWith("csf: ", badCsf, StringComparison.Ordinal);
        await (await Client.GetAsync(Path + "?georel=near&geometry=Point&coordinates=[1,2]")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Names_are_expanded_with_the_request_context_and_compacted_on_output()
    {
        var hosted = await Client.PostJson("/ngsi-ld/v1/jsonldContexts", """{"@context":{"Plow":"https://aizu.example/ns#Plow","blade":"https://aizu.example/ns#blade"}}""");
        var contextUrl = hosted.Headers.Location!.ToString();
        using var create = new HttpRequestMessage(HttpMethod.Post, Path)
        {
            Content = NgsiHttp.Json("""
                {"id":"urn:ngsi-ld:ContextSourceRegistration:ctx","type":"ContextSourceRegistration",
                 "information":[{"entities":[{"type":"Plow"}],"propertyNames":["blade"]}],"endpoint":"http://a.example"}
                """),
        };
        create.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(create)).StatusCode);

        var core = await (await Client.GetAsync(Path + "/urn:ngsi-ld:ContextSourceRegistration:ctx")).ReadJson();
        Assert.Equal("https://aizu.example/ns#Plow", core["information"]![0]!["entities"]![0]!["type"]!.GetValue<string>());
        Assert.Equal("https://aizu.example/ns#blade", core["information"]![0]!["propertyNames"]![0]!.GetValue<string>());

        using var ld = new HttpRequestMessage(HttpMethod.Get, Path + "?type=Plow");
        ld.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        ld.Headers.Accept.ParseAdd("application/ld+json");
        var list = (await (await Client.SendAsync(ld)).ReadJson()).AsArray();
        var only = Assert.Single(list)!;
        Assert.Equal("Plow", only["information"]![0]!["entities"]![0]!["type"]!.GetValue<string>());
        Assert.Equal("blade", only["information"]![0]!["propertyNames"]![0]!.GetValue<string>());
        Assert.NotNull(only["@context"]);
    }

    [Fact]
    public async Task Registrations_are_per_tenant_and_survive_a_restart()
    {
        var data = TempDirectory.Create("machi-csr-");
        try
        {
            await using (var first = await backend.StartAsync(data))
            {
                using var create = new HttpRequestMessage(HttpMethod.Post, Path)
                {
                    Content = NgsiHttp.Json(Registration("urn:ngsi-ld:ContextSourceRegistration:t", """[{"entities":[{"type":"Vehicle"}]}]""")),
                };
                create.Headers.Add("NGSILD-Tenant", "aizu");
                Assert.Equal(HttpStatusCode.Created, (await first.Client.SendAsync(create)).StatusCode);
                Assert.Empty((await (await first.Client.GetAsync(Path)).ReadJson()).AsArray());
            }

            await using var second = await backend.StartAsync(data);
            using var get = new HttpRequestMessage(HttpMethod.Get, Path + "/urn:ngsi-ld:ContextSourceRegistration:t");
            get.Headers.Add("NGSILD-Tenant", "aizu");
            var response = await second.Client.SendAsync(get);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("http://kitakata.example:8080", (await response.ReadJson())["endpoint"]!.GetValue<string>());
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    /// <summary>The last two characters of the ids of the registrations a query answers (their test names), in order.</summary>
    private async Task<List<string>> RegistrationIds(string query) =>
        [.. (await (await Client.GetAsync(Path + query)).ReadJson()).AsArray().Select(r => r!["id"]!.GetValue<string>()[^2..]).Order()];
}

public sealed class RegistrationApiTestsOnSqlite() : RegistrationApiTests(Backend.Sqlite);

[Collection(PostgresSecondGroup.Name)]
public sealed class RegistrationApiTestsOnPostgres(PostgresServer postgres) : RegistrationApiTests(Backend.Postgres(postgres));
