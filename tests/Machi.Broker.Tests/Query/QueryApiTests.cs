using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Query;

/// <summary>
/// Queries as an API user sees them, over HTTP on the real server: GET /entities and POST /entityOperations/query
/// against a small Aizuwakamatsu data set (buses and a snowplow around Tsuruga-jo, shelters, a district polygon).
/// </summary>
public abstract class QueryApiTests(Backend backend) : IAsyncLifetime
{
    private const string QueryPath = "/ngsi-ld/v1/entityOperations/query";
    private const string CreatePath = "/ngsi-ld/v1/entityOperations/create";

    // Vehicles placed due north (and east) of Tsuruga-jo (37.4877, 139.9298) at geodesic distances computed with
    // Vincenty's direct formula on WGS84: 400 m, 995 m, 1005 m and 2500 m.
    private const string Bus1 = "urn:ngsi-ld:Vehicle:aizu-bus-01";
    private const string Bus2 = "urn:ngsi-ld:Vehicle:aizu-bus-02";
    private const string Plow = "urn:ngsi-ld:Vehicle:snowplow-01";
    private const string Taxi = "urn:ngsi-ld:Vehicle:taxi-07";

    // 避難所 (evacuation shelters): the gymnasium 300 m west of the castle, a school 700 m north-east (both inside the
    // district), a hot-spring shelter 2.8 km east and a community centre 1500 m south (both outside).
    private const string Gym = "urn:ngsi-ld:Shelter:tsurugajo-gym";
    private const string School = "urn:ngsi-ld:Shelter:kita-elementary";
    private const string Onsen = "urn:ngsi-ld:Shelter:higashiyama-onsen";
    private const string Minami = "urn:ngsi-ld:Shelter:minami-community";
    private const string District = "urn:ngsi-ld:District:tsurugajo";

    private const string CastlePoint = "[139.9298,37.4877]";
    private const string DistrictPolygon = "[[[139.92,37.48],[139.94,37.48],[139.94,37.495],[139.92,37.495],[139.92,37.48]]]";

    private const string Aizu = """
        [
        {"id":"urn:ngsi-ld:Vehicle:aizu-bus-01","type":"Vehicle","scope":"/Aizu/Kita/Ikkimachi",
         "speed":{"type":"Property","value":42,"unitCode":"KMH","observedAt":"2026-11-25T08:00:00Z"},
         "serviceStatus":{"type":"Property","value":"active"},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.491304]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"会津バス1号","en":"Aizu Bus 1"}},
         "operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-bus"},
         "brand":{"type":"Property","value":{"make":"Isuzu","model":"Erga"}},
         "tags":{"type":"Property","value":["bus","lowFloor"]},
         "lastServiced":{"type":"Property","value":"2026-11-01"},
         "wheelchairAccessible":{"type":"Property","value":true}},
        {"id":"urn:ngsi-ld:Vehicle:aizu-bus-02","type":"Vehicle","scope":"/Aizu/Kita",
         "speed":{"type":"Property","value":0,"unitCode":"KMH","observedAt":"2026-11-25T07:30:00Z"},
         "serviceStatus":{"type":"Property","value":"parked"},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.496665]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"会津バス2号","en":"Aizu Bus 2"}},
         "operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-bus"},
         "brand":{"type":"Property","value":{"make":"Hino","model":"Blue Ribbon"}},
         "tags":{"type":"Property","value":["bus"]},
         "lastServiced":{"type":"Property","value":"2026-10-15"},
         "wheelchairAccessible":{"type":"Property","value":false}},
        {"id":"urn:ngsi-ld:Vehicle:snowplow-01","type":["Vehicle","Snowplow"],"scope":["/Aizu/Minami/Otemachi","/Maintenance"],
         "speed":{"type":"Property","value":15.5,"unitCode":"KMH","observedAt":"2026-11-25T09:10:00+09:00"},
         "serviceStatus":{"type":"Property","value":"active"},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.4967551]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"除雪車1号","en":"Snowplow 1"}},
         "operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"},
         "plowState":{"type":"Property","value":"plowing"}},
        {"id":"urn:ngsi-ld:Vehicle:taxi-07","type":"Vehicle",
         "speed":{"type":"Property","value":61,"observedAt":"2026-11-25T08:05:00Z"},
         "serviceStatus":{"type":"Property","value":"outOfService"},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9580678,37.4876966]}},
         "operator":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-taxi"},
         "brand":{"type":"Property","value":{"make":"Toyota","model":"JPN Taxi"}}},
        {"id":"urn:ngsi-ld:Shelter:tsurugajo-gym","type":"Shelter","scope":"/Aizu/Minami",
         "capacity":{"type":"Property","value":450,"reservedFor":{"type":"Property","value":50}},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9264079,37.4877]}},
         "entrance":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9266,37.4879]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"鶴ヶ城体育館","en":"Tsurugajo Gymnasium"}},
         "heated":{"type":"Property","value":true},
         "openingTime":{"type":"Property","value":"06:00:00"},
         "inspectedAt":{"type":"Property","value":"2026-11-20T09:00:00+09:00"},
         "managedBy":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"}},
        {"id":"urn:ngsi-ld:Shelter:kita-elementary","type":["Shelter","School"],"scope":"/Aizu/Kita/Jinyamachi",
         "capacity":{"type":"Property","value":120,"reservedFor":{"type":"Property","value":10}},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9353971,37.4921596]}},
         "entrance":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9352,37.492]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"北小学校","en":"Kita Elementary School"}},
         "heated":{"type":"Property","value":false},
         "openingTime":{"type":"Property","value":"08:30:00"},
         "inspectedAt":{"type":"Property","value":"2026-10-01T10:00:00Z"},
         "managedBy":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"}},
        {"id":"urn:ngsi-ld:Shelter:higashiyama-onsen","type":"Shelter","scope":"/Higashiyama/Onsen",
         "capacity":{"type":"Property","value":30},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.96,37.48]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"東山温泉避難所"}},
         "heated":{"type":"Property","value":true},
         "openingTime":{"type":"Property","value":"07:00:00"},
         "managedBy":{"type":"Relationship","object":"urn:ngsi-ld:Organization:higashiyama-onsen"}},
        {"id":"urn:ngsi-ld:Shelter:minami-community","type":"Shelter","scope":"/Aizu/Minami/Otemachi",
         "capacity":{"type":"Property","value":200,"reservedFor":{"type":"Property","value":0}},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.4741849]}},
         "name":{"type":"LanguageProperty","languageMap":{"en":"Minami Community Centre"}},
         "managedBy":{"type":"Relationship","object":"urn:ngsi-ld:Organization:aizu-city"}},
        {"id":"urn:ngsi-ld:District:tsurugajo","type":"District","scope":"/Aizu",
         "location":{"type":"GeoProperty","value":{"type":"Polygon","coordinates":[[[139.92,37.48],[139.94,37.48],[139.94,37.495],[139.92,37.495],[139.92,37.48]]]}},
         "name":{"type":"LanguageProperty","languageMap":{"ja":"鶴ヶ城地区","en":"Tsurugajo District"}},
         "population":{"type":"Property","value":12000}}
        ]
        """;

    private static readonly string[] Vehicles = [Bus1, Bus2, Plow, Taxi];
    private static readonly string[] Shelters = [Gym, School, Onsen, Minami];
    private static readonly string[] Everything = [.. Vehicles, .. Shelters, District];

    private MachiServer _server = null!;

    private HttpClient Client => _server.Client;

    public async Task InitializeAsync()
    {
        _server = await backend.StartAsync();
        await SeedAsync(Client);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static async Task SeedAsync(HttpClient client, string? tenant = null)
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, CreatePath) { Content = NgsiHttp.Json(Aizu) };
        if (tenant is not null)
        {
            create.Headers.Add("NGSILD-Tenant", tenant);
        }

        var response = await client.SendAsync(create);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    /// <summary>A GET /entities URL with each parameter value percent-encoded.</summary>
    private static string Url(params (string Name, string Value)[] parameters) =>
        NgsiHttp.Entities + "?" + string.Join('&', parameters.Select(p => p.Name + "=" + Uri.EscapeDataString(p.Value)));

    private static string[] Set(params string[] ids) => ids.Order(StringComparer.Ordinal).ToArray();

    private static async Task<string[]> IdsOf(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"expected 200, got {(int)response.StatusCode}: {body}");
        return JsonNode.Parse(body)!.AsArray().Select(e => e!["id"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToArray();
    }

    private async Task<string[]> Get(params (string Name, string Value)[] parameters) => await IdsOf(await Client.GetAsync(Url(parameters)));

    private Task<HttpResponseMessage> Post(string body, string url = "") => Client.PostJson(QueryPath + url, body);

    private async Task<string[]> PostIds(string body) => await IdsOf(await Post(body));

    private static HttpRequestMessage WithLink(HttpRequestMessage request, string contextUrl)
    {
        request.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        return request;
    }

    [Fact]
    public async Task Type_expressions_select_any_of_all_of_and_grouped_types()
    {
        Assert.Equal(Set(Vehicles), await Get(("type", "Vehicle")));
        Assert.Equal(Set(Plow), await Get(("type", "Snowplow")));
        Assert.Equal(Set([.. Shelters, District]), await Get(("type", "Shelter,District")));
        Assert.Equal(Set(Plow), await Get(("type", "Vehicle;Snowplow")));
        Assert.Equal(Set(School, District), await Get(("type", "(Shelter;School)|District")));
        Assert.Equal(Set(School, Plow), await Get(("type", "School|Snowplow")));
        Assert.Empty(await Get(("type", "Hospital")));

        Assert.Equal(Set(School, District), await PostIds("""{"type":"Query","entities":[{"type":"(Shelter;School)|District"}]}"""));
        // Several selectors are ORed.
        Assert.Equal(Set(Plow, Bus1), await PostIds($$"""{"type":"Query","entities":[{"type":"Snowplow"},{"id":"{{Bus1}}"}]}"""));

        await (await Client.GetAsync(Url(("type", "(Shelter;")))).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":[{"type":"Shelter||"}]}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Ids_and_idPattern_select_entities_and_an_invalid_pattern_is_BadRequestData()
    {
        Assert.Equal(Set(Bus1, Gym), await Get(("id", $"{Bus1},{Gym}")));
        Assert.Equal(Set(Bus1), await Get(("id", $"{Bus1},{Gym}"), ("type", "Vehicle")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("idPattern", @"^urn:ngsi-ld:Vehicle:aizu-bus-\d+$")));
        Assert.Equal(Set(Gym, Onsen), await Get(("idPattern", "(gym|onsen)$"), ("type", "Shelter")));
        Assert.Empty(await Get(("idPattern", "^urn:ngsi-ld:Vehicle:"), ("type", "Shelter")));

        Assert.Equal(Set(Shelters), await PostIds("""{"type":"Query","entities":[{"idPattern":"^urn:ngsi-ld:Shelter:"}]}"""));
        Assert.Equal(Set(Bus2, District), await PostIds($$"""{"type":"Query","entities":[{"idPattern":"bus-02$","type":"Vehicle"},{"id":"{{District}}"}]}"""));
        Assert.Empty(await PostIds($$"""{"type":"Query","entities":[{"id":"{{Bus1}}","type":"Shelter"}]}"""));

        Assert.Contains("idPattern", await (await Client.GetAsync(Url(("idPattern", "(unclosed")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        // Lookarounds need backtracking, which the linear-time engine refuses.
        await (await Client.GetAsync(Url(("idPattern", "(?<=Vehicle:)aizu")))).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":[{"idPattern":"[z-a]"}]}""")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Url(("id", "not a uri")))).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":[{"id":"not a uri"}]}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Attrs_keeps_entities_having_one_of_them_and_returns_only_those_attributes()
    {
        var response = await Client.GetAsync(Url(("attrs", "capacity")));
        var shelters = (await response.ReadJson()).AsArray();
        Assert.Equal(Set(Shelters), shelters.Select(e => e!["id"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        // scope is a core member of the entity, like id and type, not an attribute attrs can leave out.
        Assert.All(shelters, e => Assert.Equal(["capacity", "id", "scope", "type"], e!.AsObject().Select(m => m.Key).Order(StringComparer.Ordinal)));
        Assert.Equal(50, shelters.Single(e => e!["id"]!.GetValue<string>() == Gym)!["capacity"]!["reservedFor"]!["value"]!.GetValue<int>());

        Assert.Equal(Set([.. Shelters, .. Vehicles]), await Get(("attrs", "capacity,speed")));
        Assert.Equal(Set(Plow), await Get(("attrs", "plowState"), ("type", "Vehicle")));

        var posted = (await (await Post("""{"type":"Query","attrs":["plowState","heated"]}""")).ReadJson()).AsArray();
        Assert.Equal(Set(Plow, Gym, School, Onsen), posted.Select(e => e!["id"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        var plow = posted.Single(e => e!["id"]!.GetValue<string>() == Plow)!.AsObject();
        Assert.Equal("plowing", plow["plowState"]!["value"]!.GetValue<string>());
        Assert.Null(plow["speed"]);
        Assert.Null(plow["location"]);
    }

    [Fact]
    public async Task Pick_and_omit_shape_each_entity_and_together_are_BadRequestData()
    {
        var picked = (await (await Client.GetAsync(Url(("type", "Shelter"), ("pick", "id,capacity")))).ReadJson()).AsArray();
        Assert.Equal(4, picked.Count);
        Assert.All(picked, e => Assert.Equal(["capacity", "id"], e!.AsObject().Select(m => m.Key).Order(StringComparer.Ordinal)));

        var omitted = (await (await Client.GetAsync(Url(("id", Gym), ("omit", "location,entrance,name,type")))).ReadJson()).AsArray();
        Assert.Equal(
            ["capacity", "heated", "id", "inspectedAt", "managedBy", "openingTime", "scope"],
            Assert.Single(omitted)!.AsObject().Select(m => m.Key).Order(StringComparer.Ordinal));

        var posted = (await (await Post($$"""{"type":"Query","entities":[{"id":"{{Bus1}}"}],"pick":["type","speed","operator"]}""", "?options=keyValues")).ReadJson()).AsArray();
        var bus = Assert.Single(posted)!.AsObject();
        Assert.Equal(["operator", "speed", "type"], bus.Select(m => m.Key).Order(StringComparer.Ordinal));
        Assert.Equal(42, bus["speed"]!.GetValue<int>());
        var postedOmit = (await (await Post($$"""{"type":"Query","entities":[{"id":"{{Taxi}}"}],"omit":"location,brand,speed"}""")).ReadJson()).AsArray();
        Assert.Equal(["id", "operator", "serviceStatus", "type"], Assert.Single(postedOmit)!.AsObject().Select(m => m.Key).Order(StringComparer.Ordinal));

        Assert.Contains("pick and omit", await (await Client.GetAsync(Url(("type", "Shelter"), ("pick", "id"), ("omit", "name")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        await (await Post("""{"type":"Query","entities":[{"type":"Shelter"}],"pick":["id"],"omit":["name"]}""")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Url(("type", "Shelter"), ("pick", "id,,capacity")))).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Url(("type", "Shelter"), ("pick", "{capacity}")))).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Q_compares_numbers_strings_and_booleans_with_every_operator()
    {
        Assert.Equal(Set(Bus1, Taxi), await Get(("q", "speed>40")));
        Assert.Equal(Set(Bus1, Taxi), await Get(("q", "speed>=42")));
        Assert.Equal(Set(Bus2), await Get(("q", "speed<15.5")));
        Assert.Equal(Set(Bus2, Plow), await Get(("q", "speed<=15.5")));
        Assert.Equal(Set(Bus2), await Get(("q", "speed==0")));
        // != is asked of values that exist: shelters have no speed and are not "not 0".
        Assert.Equal(Set(Bus1, Plow, Taxi), await Get(("q", "speed!=0")));
        Assert.Equal(Set(Bus1, Plow), await Get(("q", "serviceStatus==\"active\"")));
        Assert.Equal(Set(Bus2, Taxi), await Get(("q", "serviceStatus!=\"active\"")));
        Assert.Equal(Set(Bus2, Taxi), await Get(("q", "serviceStatus>\"b\"")));
        Assert.Equal(Set(Gym, Onsen), await Get(("q", "heated==true")));
        Assert.Equal(Set(School), await Get(("q", "heated==false")));
        Assert.Equal(Set(Bus1), await Get(("q", "wheelchairAccessible==true")));
        Assert.Equal(Set(Onsen), await Get(("q", "capacity<200;heated==true")));

        // A number never equals a string and vice versa.
        Assert.Empty(await Get(("q", "speed==\"42\"")));
        Assert.Empty(await Get(("q", "serviceStatus>0")));

        Assert.Equal(Set(Bus1, Taxi), await PostIds("""{"type":"Query","entities":[{"type":"Vehicle"}],"q":"speed>40"}"""));
        Assert.Equal(Set(Gym), await PostIds("""{"type":"Query","q":"capacity>=450"}"""));
    }

    [Fact]
    public async Task Q_ranges_and_lists_match_inclusively_and_negate_with_not_equal()
    {
        Assert.Equal(Set(Gym, School, Minami), await Get(("q", "capacity==100..450")));
        Assert.Equal(Set(Bus1, Plow), await Get(("q", "speed==10..50")));
        Assert.Equal(Set(Gym, Onsen), await Get(("q", "capacity!=100..300")));
        // Strings range in code-point order: "outOfService" < "p" < "parked".
        Assert.Equal(Set(Bus1, Plow, Taxi), await Get(("q", "serviceStatus==\"a\"..\"p\"")));
        Assert.Equal(Set(Bus2, Taxi), await Get(("q", "serviceStatus==\"parked\",\"outOfService\"")));
        Assert.Equal(Set(Bus2, Taxi), await Get(("q", "speed==0,61")));
        Assert.Equal(Set(School, Minami), await Get(("q", "capacity!=30,450")));
        // An array value matches a list when any element does; != when none does.
        Assert.Equal(Set(Bus1), await Get(("q", "tags==\"lowFloor\"")));
        Assert.Equal(Set(Bus2), await Get(("q", "tags!=\"lowFloor\"")));

        Assert.Equal(Set(Gym, School, Minami), await PostIds("""{"type":"Query","q":"capacity==100..450"}"""));
        Assert.Contains("range", await (await Client.GetAsync(Url(("q", "speed>1..5")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        Assert.Contains("list", await (await Client.GetAsync(Url(("q", "speed<1,5")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Q_patterns_match_strings_and_negated_patterns_exclude_them()
    {
        Assert.Equal(Set(Taxi), await Get(("q", "serviceStatus~=^out")));
        Assert.Equal(Set(Bus2, Taxi), await Get(("q", "serviceStatus!~=^act")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("q", "name~=(?i)BUS")));
        Assert.Equal(Set(Onsen), await Get(("q", "name~=避難所$")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("q", "brand[make]~=^(Isuzu|Hino)$")));
        Assert.Empty(await Get(("q", "speed~=4")));
        Assert.Equal(Set(Taxi), await PostIds("""{"type":"Query","q":"brand[model]~=Taxi;serviceStatus!~=active"}"""));
        await (await Client.GetAsync(Url(("q", "name~=(?<=a)b")))).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Q_dates_times_and_date_times_compare_as_time_whatever_the_offset()
    {
        Assert.Equal(Set(Bus2), await Get(("q", "lastServiced<2026-10-31")));
        Assert.Equal(Set(Bus1), await Get(("q", "lastServiced>=2026-11-01")));
        Assert.Equal(Set(Gym, Onsen), await Get(("q", "openingTime<07:30:00")));
        Assert.Equal(Set(Onsen), await Get(("q", "openingTime==07:00:00")));
        // 2026-11-20T09:00:00+09:00 is 00:00Z.
        Assert.Equal(Set(Gym), await Get(("q", "inspectedAt>=2026-11-20T00:00:00Z")));
        Assert.Empty(await Get(("q", "inspectedAt>2026-11-20T00:00:00Z")));
        Assert.Equal(Set(Gym, School), await Get(("q", "inspectedAt==2026-09-01T00:00:00Z..2026-11-20T09:00:00+09:00")));

        // observedAt is a meta-attribute of speed; the snowplow reported at 09:10+09:00, i.e. 00:10Z.
        Assert.Equal(Set(Bus1, Taxi), await Get(("q", "speed.observedAt>=2026-11-25T08:00:00Z")));
        Assert.Equal(Set(Plow), await Get(("q", "speed.observedAt<2026-11-25T10:00:00+09:00")));
        Assert.Equal(Set(Plow), await PostIds("""{"type":"Query","q":"speed.observedAt<2026-11-25T01:00:00Z"}"""));
        await (await Client.GetAsync(Url(("q", "lastServiced<2026-13-45")))).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Q_follows_relationships_sub_attributes_meta_attributes_compound_members_and_language_tags()
    {
        Assert.Equal(Set(Bus1, Bus2), await Get(("q", "operator==urn:ngsi-ld:Organization:aizu-bus")));
        Assert.Equal(Set(Plow, Taxi), await Get(("q", "operator!=urn:ngsi-ld:Organization:aizu-bus")));
        Assert.Equal(Set(Gym, School, Minami), await Get(("q", "managedBy==\"urn:ngsi-ld:Organization:aizu-city\"")));
        Assert.Equal(Set(Gym, School), await Get(("q", "capacity.reservedFor>=10")));
        Assert.Equal(Set(Minami), await Get(("q", "capacity.reservedFor==0")));
        Assert.Equal(Set(Bus1, Bus2, Plow), await Get(("q", "speed.unitCode==\"KMH\"")));
        Assert.Equal(Set(Taxi), await Get(("q", "brand[make]==\"Toyota\"")));
        Assert.Equal(Set(Gym), await Get(("q", "name[ja]==\"鶴ヶ城体育館\"")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("q", "name[en]~=^Aizu Bus")));
        Assert.Empty(await Get(("q", "name[fr]~=.")));

        Assert.Equal(Set(Gym, School), await PostIds("""{"type":"Query","q":"capacity.reservedFor>5;managedBy==urn:ngsi-ld:Organization:aizu-city"}"""));
    }

    [Fact]
    public async Task Q_existence_negation_and_precedence_of_and_over_or()
    {
        Assert.Equal(Set(Plow), await Get(("q", "plowState")));
        Assert.Equal(Set(Taxi), await Get(("q", "!name"), ("type", "Vehicle")));
        Assert.Equal(Set(Minami), await Get(("q", "capacity;!heated")));
        Assert.Equal(Set(Gym, School, Minami), await Get(("q", "capacity.reservedFor")));
        Assert.Equal(Set(Onsen), await Get(("q", "capacity;!capacity.reservedFor")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("q", "speed.unitCode;tags")));

        // ';' binds tighter than '|': speed>40 OR (speed==0 AND parked).
        Assert.Equal(Set(Bus1, Bus2, Taxi), await Get(("q", "speed>40|speed==0;serviceStatus==\"parked\"")));
        Assert.Equal(Set(Bus1), await Get(("q", "(speed>40|speed==0);serviceStatus==\"active\"")));
        Assert.Equal(Set(Plow, District), await Get(("q", "plowState|population>10000")));
        Assert.Equal(Set(Plow, District), await PostIds("""{"type":"Query","q":"(plowState|population>10000)"}"""));
    }

    [Fact]
    public async Task Q_syntax_errors_are_BadRequestData_naming_the_position()
    {
        var detail = await (await Client.GetAsync(Url(("q", "speed>40;;capacity")))).AssertProblem(400, "BadRequestData");
        Assert.Contains("position 9", detail, StringComparison.Ordinal);
        Assert.Contains("attribute name", detail, StringComparison.Ordinal);

        Assert.Contains("position 8", await (await Client.GetAsync(Url(("q", "(speed>1")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        Assert.Contains("double quotes", await (await Client.GetAsync(Url(("q", "serviceStatus==active")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        Assert.Contains("unterminated", await (await Client.GetAsync(Url(("q", "serviceStatus==\"active")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);

        var posted = await (await Post("""{"type":"Query","q":"speed=>3"}""")).AssertProblem(400, "BadRequestData");
        Assert.Contains("position 5", posted, StringComparison.Ordinal);
        await (await Post("""{"type":"Query","q":42}""")).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(NgsiHttp.Entities + "?q=")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Near_with_maxDistance_and_minDistance_measures_metres_with_inclusive_bounds()
    {
        // Vehicles at 400, 995, 1005 and 2500 m from the castle: 1000 m falls between the second and the third.
        Assert.Equal(Set(Bus1, Bus2), await Get(("type", "Vehicle"), ("georel", "near;maxDistance==1000"), ("geometry", "Point"), ("coordinates", CastlePoint)));
        Assert.Equal(Set(Plow, Taxi), await Get(("type", "Vehicle"), ("georel", "near;minDistance==1000"), ("geometry", "Point"), ("coordinates", CastlePoint)));
        Assert.Equal(Set(Bus1, Bus2, Plow), await Get(("type", "Vehicle"), ("georel", "near;maxDistance==1010"), ("geometry", "Point"), ("coordinates", CastlePoint)));
        Assert.Equal(Set(Taxi), await Get(("type", "Vehicle"), ("georel", "near;minDistance==2490"), ("geometry", "Point"), ("coordinates", CastlePoint)));
        Assert.Empty(await Get(("type", "Vehicle"), ("georel", "near;minDistance==2510"), ("geometry", "Point"), ("coordinates", CastlePoint)));

        // Without a type: the shelters 300 m and 700 m away, and the district whose polygon holds the castle (0 m).
        Assert.Equal(Set(Bus1, Gym, School, District), await Get(("georel", "near;maxDistance==800"), ("geometry", "Point"), ("coordinates", CastlePoint)));

        // Both bounds are inclusive: a shelter's own point is within 0 m of itself and at least 0 m away.
        Assert.Equal(Set(Gym), await Get(("type", "Shelter"), ("georel", "near;maxDistance==0"), ("geometry", "Point"), ("coordinates", "[139.9264079,37.4877]")));
        Assert.Equal(Set(Shelters), await Get(("type", "Shelter"), ("georel", "near;minDistance==0"), ("geometry", "Point"), ("coordinates", "[139.9264079,37.4877]")));

        Assert.Equal(Set(Bus1, Bus2), await PostIds($$$"""
            {"type":"Query","entities":[{"type":"Vehicle"}],"geoQ":{"georel":"near;maxDistance==1000","geometry":"Point","coordinates":{{{CastlePoint}}}}}
            """));
        // coordinates may also be given as a string holding the array.
        Assert.Equal(Set(Plow, Taxi), await PostIds($$$"""
            {"type":"Query","entities":[{"type":"Vehicle"}],"geoQ":{"georel":"near;minDistance==1000","geometry":"Point","coordinates":"{{{CastlePoint}}}"}}
            """));
    }

    [Fact]
    public async Task Topological_relations_compare_entity_geometries_with_the_query_geometry()
    {
        (string, string)[] Geo(string georel, string geometry, string coordinates) => [("georel", georel), ("geometry", geometry), ("coordinates", coordinates)];

        Assert.Equal(Set(Bus1, Gym, School, District), await Get(Geo("within", "Polygon", DistrictPolygon)));
        Assert.Equal(Set(Bus1, Gym, School, District), await Get(Geo("intersects", "Polygon", DistrictPolygon)));
        Assert.Equal(Set(Bus2, Plow, Taxi, Onsen, Minami), await Get(Geo("disjoint", "Polygon", DistrictPolygon)));
        // A line along the castle's parallel touches the gymnasium (on it) and crosses the district.
        Assert.Equal(Set(Gym, District), await Get(Geo("intersects", "LineString", "[[139.92,37.4877],[139.96,37.4877]]")));
        Assert.Equal(Set(District), await Get(Geo("contains", "Point", "[139.93,37.49]")));
        // Around the gymnasium only: it lies within; the district merely intersects, and contains none of it.
        const string aroundGym = "[[[139.925,37.486],[139.932,37.486],[139.932,37.489],[139.925,37.489],[139.925,37.486]]]";
        Assert.Equal(Set(Gym), await Get(Geo("within", "Polygon", aroundGym)));
        Assert.Equal(Set(Gym, District), await Get(Geo("intersects", "Polygon", aroundGym)));
        Assert.Equal(Set(District), await Get(Geo("contains", "Polygon", aroundGym)));
        Assert.Empty(await Get(Geo("contains", "LineString", "[[139.92,37.4877],[139.96,37.4877]]")));
        Assert.Equal(Set(Gym), await Get(Geo("equals", "Point", "[139.9264079,37.4877]")));
        Assert.Equal(Set(District), await Get(Geo("equals", "Polygon", DistrictPolygon)));
        Assert.Equal(Set(District), await Get(Geo("overlaps", "Polygon", "[[[139.935,37.49],[139.95,37.49],[139.95,37.50],[139.935,37.50],[139.935,37.49]]]")));
        Assert.Equal(Set(Gym, School), await Get([("type", "Shelter"), .. Geo("within", "MultiPolygon", "[" + DistrictPolygon + ",[[[139.0,35.0],[139.1,35.0],[139.1,35.1],[139.0,35.0]]]]")]));

        Assert.Equal(Set(Gym, School), await PostIds($$$"""
            {"type":"Query","entities":[{"type":"Shelter"}],"geoQ":{"georel":"within","geometry":"Polygon","coordinates":{{{DistrictPolygon}}}}}
            """));
        Assert.Equal(Set(Onsen, Minami), await PostIds($$$"""
            {"type":"Query","entities":[{"type":"Shelter"}],"geoQ":{"georel":"disjoint","geometry":"Polygon","coordinates":{{{DistrictPolygon}}}}}
            """));
    }

    [Fact]
    public async Task A_custom_geoproperty_is_queried_instead_of_location()
    {
        // Entrances are 284 m (gymnasium) and 675 m (school) from the castle; only shelters have one.
        Assert.Equal(Set(Gym, School), await Get(("georel", "near;maxDistance==800"), ("geometry", "Point"), ("coordinates", CastlePoint), ("geoproperty", "entrance")));
        Assert.Equal(Set(Gym), await Get(("georel", "near;maxDistance==500"), ("geometry", "Point"), ("coordinates", CastlePoint), ("geoproperty", "entrance")));
        // A property that is not a GeoProperty matches no geo-query.
        Assert.Empty(await Get(("georel", "near;minDistance==0"), ("geometry", "Point"), ("coordinates", CastlePoint), ("geoproperty", "capacity")));

        Assert.Equal(Set(Gym), await PostIds($$$"""
            {"type":"Query","geoQ":{"georel":"near;maxDistance==500","geometry":"Point","coordinates":{{{CastlePoint}}},"geoproperty":"entrance"}}
            """));

        // The GeoJSON rendering can use the same property as each feature's geometry.
        using var geo = new HttpRequestMessage(HttpMethod.Get, Url(("type", "Shelter"), ("geoproperty", "entrance"), ("georel", "near;maxDistance==500"), ("geometry", "Point"), ("coordinates", CastlePoint), ("geometryProperty", "entrance")));
        geo.Headers.Accept.ParseAdd("application/geo+json");
        var feature = Assert.Single((await (await Client.SendAsync(geo)).ReadJson())["features"]!.AsArray())!;
        Assert.Equal(139.9266, feature["geometry"]!["coordinates"]![0]!.GetValue<double>());
    }

    [Fact]
    public async Task Invalid_geo_parameters_are_BadRequestData()
    {
        async Task Rejected(params (string, string)[] parameters) =>
            await (await Client.GetAsync(Url(parameters))).AssertProblem(400, "BadRequestData");

        await Rejected(("georel", "near"), ("geometry", "Point"), ("coordinates", CastlePoint));
        await Rejected(("georel", "near;maxDistance==-5"), ("geometry", "Point"), ("coordinates", CastlePoint));
        await Rejected(("georel", "near;maxDistance==far"), ("geometry", "Point"), ("coordinates", CastlePoint));
        await Rejected(("georel", "near;radius==5"), ("geometry", "Point"), ("coordinates", CastlePoint));
        await Rejected(("georel", "near;maxDistance==10"), ("geometry", "Polygon"), ("coordinates", DistrictPolygon));
        await Rejected(("georel", "within;maxDistance==10"), ("geometry", "Polygon"), ("coordinates", DistrictPolygon));
        await Rejected(("georel", "touches"), ("geometry", "Point"), ("coordinates", CastlePoint));
        await Rejected(("georel", "within"), ("geometry", "Circle"), ("coordinates", CastlePoint));
        await Rejected(("georel", "within"), ("geometry", "Polygon"), ("coordinates", "[[[139.92,37.48],[139.94,37.48],[139.94,37.495]]]"));
        await Rejected(("georel", "intersects"), ("geometry", "Point"), ("coordinates", "139.93,37.49"));
        await Rejected(("georel", "intersects"), ("geometry", "Point"), ("coordinates", "[139.93]"));
        await Rejected(("georel", "intersects"), ("geometry", "Point"), ("coordinates", "[200,95]"));
        await Rejected(("georel", "intersects"), ("geometry", "Point"));
        await Rejected(("geometry", "Point"), ("coordinates", CastlePoint));
        await Rejected(("georel", "within"), ("coordinates", DistrictPolygon));
        await Rejected(("georel", "near;maxDistance==10"), ("geometry", "Point"), ("coordinates", CastlePoint), ("geoproperty", "bad name"));

        await (await Post("""{"type":"Query","geoQ":"near"}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","geoQ":{"georel":"within","geometry":"Polygon"}}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","geoQ":{"georel":5,"geometry":"Point","coordinates":[1,2]}}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task ScopeQ_matches_exact_scopes_subtrees_and_single_levels()
    {
        Assert.Equal(Set(Bus2), await Get(("scopeQ", "/Aizu/Kita")));
        Assert.Equal(Set(Bus1, Bus2, School), await Get(("scopeQ", "/Aizu/Kita/#")));
        Assert.Equal(Set(Bus2, Gym), await Get(("scopeQ", "/Aizu/+")));
        Assert.Equal(Set(Plow, Minami), await Get(("scopeQ", "/Aizu/+/Otemachi")));
        Assert.Equal(Set(Everything.Where(id => id != Taxi).ToArray()), await Get(("scopeQ", "/#")));
        Assert.Equal(Set(Onsen, District), await Get(("scopeQ", "/Higashiyama/#,/Aizu")));
        // The snowplow is in both: one of its scopes matches each pattern.
        Assert.Equal(Set(Plow), await Get(("scopeQ", "/Aizu/#;/Maintenance")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("scopeQ", "/Aizu/Kita/#"), ("type", "Vehicle")));

        Assert.Equal(Set(Plow, Minami, Gym), await PostIds("""{"type":"Query","scopeQ":"/Aizu/Minami/#"}"""));

        await (await Client.GetAsync(Url(("scopeQ", "Aizu")))).AssertProblem(400, "BadRequestData");
        Assert.Contains("position", await (await Client.GetAsync(Url(("scopeQ", "/Aizu/#/Kita")))).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        await (await Post("""{"type":"Query","scopeQ":"/Aizu//Kita"}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task A_user_context_in_the_Link_header_expands_query_terms_and_compacts_the_results()
    {
        var hosted = await Client.PostJson("/ngsi-ld/v1/jsonldContexts", """
            {"@context":{"EvacuationSite":"https://aizu.example.org/ns#EvacuationSite",
                         "maxOccupants":"https://aizu.example.org/ns#maxOccupants",
                         "site":"https://aizu.example.org/ns#site"}}
            """);
        Assert.Equal(HttpStatusCode.Created, hosted.StatusCode);
        var contextUrl = hosted.Headers.Location!.OriginalString;

        using var create = WithLink(new HttpRequestMessage(HttpMethod.Post, CreatePath)
        {
            Content = NgsiHttp.Json("""
                [{"id":"urn:ngsi-ld:EvacuationSite:castle-park","type":"EvacuationSite","maxOccupants":3000,
                  "site":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.4877]}}},
                 {"id":"urn:ngsi-ld:EvacuationSite:station","type":"EvacuationSite","maxOccupants":150}]
                """),
        }, contextUrl);
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(create)).StatusCode);

        using var get = WithLink(new HttpRequestMessage(HttpMethod.Get, Url(("type", "EvacuationSite"), ("q", "maxOccupants>1000"), ("pick", "id,type,maxOccupants"))), contextUrl);
        var response = await Client.SendAsync(get);
        var site = Assert.Single((await response.ReadJson()).AsArray())!;
        Assert.Equal("urn:ngsi-ld:EvacuationSite:castle-park", site["id"]!.GetValue<string>());
        Assert.Equal("EvacuationSite", site["type"]!.GetValue<string>());
        Assert.Equal(3000, site["maxOccupants"]!["value"]!.GetValue<int>());
        Assert.Contains(contextUrl, response.Headers.GetValues("Link").Single(), StringComparison.Ordinal);

        using var near = WithLink(new HttpRequestMessage(HttpMethod.Get, Url(("georel", "near;maxDistance==10"), ("geometry", "Point"), ("coordinates", CastlePoint), ("geoproperty", "site"))), contextUrl);
        Assert.Equal(["urn:ngsi-ld:EvacuationSite:castle-park"], await IdsOf(await Client.SendAsync(near)));

        // Without the context the short names are other terms (the default vocabulary), which no entity uses.
        Assert.Empty(await Get(("type", "EvacuationSite")));
        Assert.Empty(await Get(("attrs", "maxOccupants")));
        Assert.Empty(await Get(("q", "maxOccupants>1000")));
        var expanded = Assert.Single((await (await Client.GetAsync(Url(("type", "https://aizu.example.org/ns#EvacuationSite"), ("id", "urn:ngsi-ld:EvacuationSite:station")))).ReadJson()).AsArray())!;
        Assert.Equal(150, expanded["https://aizu.example.org/ns#maxOccupants"]!["value"]!.GetValue<int>());

        using var post = WithLink(new HttpRequestMessage(HttpMethod.Post, QueryPath + "?options=keyValues")
        {
            Content = NgsiHttp.Json("""{"type":"Query","entities":[{"type":"EvacuationSite"}],"q":"maxOccupants<1000","attrs":["maxOccupants"]}"""),
        }, contextUrl);
        var station = Assert.Single((await (await Client.SendAsync(post)).ReadJson()).AsArray())!;
        Assert.Equal(150, station["maxOccupants"]!.GetValue<int>());

        // A JSON-LD body carries its context inline.
        using var ld = new HttpRequestMessage(HttpMethod.Post, QueryPath)
        {
            Content = NgsiHttp.Json($$"""
                {"type":"Query","entities":[{"type":"EvacuationSite"}],"q":"maxOccupants>1000",
                 "@context":[{"EvacuationSite":"https://aizu.example.org/ns#EvacuationSite","maxOccupants":"https://aizu.example.org/ns#maxOccupants"},
                             "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]}
                """, "application/ld+json"),
        };
        ld.Headers.Accept.ParseAdd("application/ld+json");
        var ldResponse = await Client.SendAsync(ld);
        var ldSite = Assert.Single((await ldResponse.ReadJson()).AsArray())!;
        Assert.Equal("EvacuationSite", ldSite["type"]!.GetValue<string>());
        Assert.NotNull(ldSite["maxOccupants"]);
        Assert.NotNull(ldSite["@context"]);
    }

    [Fact]
    public async Task Query_results_come_as_keyValues_concise_GeoJSON_and_in_the_requested_language()
    {
        var kv = Assert.Single((await (await Client.GetAsync(Url(("type", "Shelter"), ("q", "capacity>=400"), ("options", "keyValues")))).ReadJson()).AsArray())!;
        Assert.Equal(450, kv["capacity"]!.GetValue<int>());
        Assert.Equal("Point", kv["location"]!["type"]!.GetValue<string>());
        Assert.Equal("urn:ngsi-ld:Organization:aizu-city", kv["managedBy"]!.GetValue<string>());

        var concise = Assert.Single((await (await Client.GetAsync(Url(("type", "Shelter"), ("q", "capacity>=400"), ("format", "concise")))).ReadJson()).AsArray())!;
        Assert.Null(concise["capacity"]!["type"]);
        Assert.Equal(450, concise["capacity"]!["value"]!.GetValue<int>());
        Assert.Equal(50, concise["capacity"]!["reservedFor"]!.GetValue<int>());
        Assert.Equal("urn:ngsi-ld:Organization:aizu-city", concise["managedBy"]!["object"]!.GetValue<string>());

        var ja = Assert.Single((await (await Client.GetAsync(Url(("id", Gym), ("lang", "ja"), ("options", "keyValues")))).ReadJson()).AsArray())!;
        Assert.Equal("鶴ヶ城体育館", ja["name"]!.GetValue<string>());
        var en = Assert.Single((await (await Post($$"""{"type":"Query","entities":[{"id":"{{Gym}}"}],"lang":"en"}""")).ReadJson()).AsArray())!;
        Assert.Equal("Property", en["name"]!["type"]!.GetValue<string>());
        Assert.Equal("Tsurugajo Gymnasium", en["name"]!["value"]!.GetValue<string>());

        var postedKv = (await (await Post("""{"type":"Query","entities":[{"type":"Vehicle"}],"q":"speed>40"}""", "?options=keyValues")).ReadJson()).AsArray();
        Assert.Equal([42.0, 61.0], postedKv.Select(e => e!["speed"]!.GetValue<double>()).Order());

        using var geo = new HttpRequestMessage(HttpMethod.Post, QueryPath + "?options=keyValues") { Content = NgsiHttp.Json("""{"type":"Query","entities":[{"type":"Vehicle"}],"q":"speed>40"}""") };
        geo.Headers.Accept.ParseAdd("application/geo+json");
        var geoResponse = await Client.SendAsync(geo);
        Assert.Equal("application/geo+json", geoResponse.Content.Headers.ContentType!.MediaType);
        var collection = await geoResponse.ReadJson();
        Assert.Equal("FeatureCollection", collection["type"]!.GetValue<string>());
        var features = collection["features"]!.AsArray();
        Assert.Equal(Set(Bus1, Taxi), features.Select(f => f!["id"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.All(features, f => Assert.Equal("Point", f!["geometry"]!["type"]!.GetValue<string>()));
        var taxi = features.Single(f => f!["id"]!.GetValue<string>() == Taxi)!;
        Assert.Equal(139.9580678, taxi["geometry"]!["coordinates"]![0]!.GetValue<double>());
        Assert.Equal(61, taxi["properties"]!["speed"]!.GetValue<int>());
    }

    // The organisations the seed's Relationships name, linked on: the city belongs to the prefecture, which names the
    // city back (a cycle); the bus company has a depot (two levels below a bus).
    private const string Organizations = """
        [{"id":"urn:ngsi-ld:Organization:aizu-city","type":"Organization","name":{"type":"Property","value":"会津若松市"},
          "partOf":{"type":"Relationship","object":"urn:ngsi-ld:Organization:fukushima"}},
         {"id":"urn:ngsi-ld:Organization:fukushima","type":"Organization","name":{"type":"Property","value":"福島県"},
          "municipalities":{"type":"ListRelationship","objectList":["urn:ngsi-ld:Organization:aizu-city","urn:ngsi-ld:Organization:kitakata"]}},
         {"id":"urn:ngsi-ld:Organization:aizu-bus","type":"Organization","name":{"type":"Property","value":"会津乗合自動車"},
          "depot":{"type":"Relationship","object":"urn:ngsi-ld:Depot:wakamatsu"}},
         {"id":"urn:ngsi-ld:Depot:wakamatsu","type":"Depot","name":{"type":"Property","value":"若松営業所"}}]
        """;

    private const string AizuCity = "urn:ngsi-ld:Organization:aizu-city";
    private const string Fukushima = "urn:ngsi-ld:Organization:fukushima";
    private const string AizuBus = "urn:ngsi-ld:Organization:aizu-bus";
    private const string Depot = "urn:ngsi-ld:Depot:wakamatsu";

    [Fact]
    public async Task Join_flat_returns_the_linked_entities_once_beside_the_page_down_to_joinLevel()
    {
        Assert.Equal(HttpStatusCode.Created, (await Client.PostAsync(CreatePath, NgsiHttp.Json(Organizations))).StatusCode);

        // Buses link to the bus company; the snowplow to the city; the taxi's company does not exist.
        Assert.Equal(Set([.. Vehicles, AizuBus, AizuCity]), await Get(("type", "Vehicle"), ("join", "flat")));
        var flat = (await (await Client.GetAsync(Url(("type", "Vehicle"), ("join", "flat")))).ReadJson()).AsArray();
        Assert.Equal(6, flat.Count);
        Assert.Equal(Vehicles.Order(StringComparer.Ordinal), flat.Take(4).Select(e => e!["id"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.Equal("会津乗合自動車", flat.Single(e => e!["id"]!.GetValue<string>() == AizuBus)!["name"]!["value"]!.GetValue<string>());

        // joinLevel 2 reaches the depot and the prefecture; 3 the prefecture's other municipality (absent) and no more.
        Assert.Equal(Set([.. Vehicles, AizuBus, AizuCity, Depot, Fukushima]), await Get(("type", "Vehicle"), ("join", "flat"), ("joinLevel", "2")));
        Assert.Equal(Set([.. Vehicles, AizuBus, AizuCity, Depot, Fukushima]), await Get(("type", "Vehicle"), ("join", "flat"), ("joinLevel", "5")));

        // Only Relationships the response shows are followed, and containedBy names entities not to read again.
        Assert.Equal(Set(Bus1, Plow), await Get(("id", $"{Bus1},{Plow}"), ("attrs", "speed"), ("join", "flat")));
        Assert.Equal(Set(Bus1, Plow, AizuCity), await Get(("id", $"{Bus1},{Plow}"), ("join", "flat"), ("containedBy", AizuBus)));

        // Paging and counting concern the entities queried, not the linked ones.
        var page = await Client.GetAsync(Url(("idPattern", "aizu-bus-"), ("join", "flat"), ("limit", "1"), ("count", "true")));
        Assert.Equal("2", page.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.Equal(AizuBus, (await page.ReadJson()).AsArray().Select(e => e!["id"]!.GetValue<string>()).Last());

        // The same through a Query body, and for one entity by id: an array of the entity and its Linked Entities.
        Assert.Equal(Set(Gym, AizuCity, Fukushima), await PostIds($$"""{"type":"Query","entities":[{"id":"{{Gym}}"}],"join":"flat","joinLevel":2}"""));
        var byId = (await (await Client.GetAsync(NgsiHttp.Entities + "/" + Bus2 + "?join=flat&joinLevel=2")).ReadJson()).AsArray();
        Assert.Equal([Bus2, AizuBus, Depot], byId.Select(e => e!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Join_inline_writes_each_linked_entity_into_its_relationship_and_ends_cycles()
    {
        Assert.Equal(HttpStatusCode.Created, (await Client.PostAsync(CreatePath, NgsiHttp.Json(Organizations))).StatusCode);

        var bus = await (await Client.GetAsync(NgsiHttp.Entities + "/" + Bus1 + "?join=inline&joinLevel=2")).ReadJson();
        var company = bus["operator"]!;
        Assert.Equal("Relationship", company["type"]!.GetValue<string>());
        Assert.Equal(AizuBus, company["object"]!.GetValue<string>());
        Assert.Equal(AizuBus, company["entity"]!["id"]!.GetValue<string>());
        Assert.Equal("会津乗合自動車", company["entity"]!["name"]!["value"]!.GetValue<string>());
        Assert.Equal("若松営業所", company["entity"]!["depot"]!["entity"]!["name"]!["value"]!.GetValue<string>());

        // joinLevel 1 (the default) stops below the first Relationship.
        var shallow = await (await Client.GetAsync(NgsiHttp.Entities + "/" + Bus1 + "?join=inline")).ReadJson();
        Assert.Equal(AizuBus, shallow["operator"]!["entity"]!["id"]!.GetValue<string>());
        Assert.Null(shallow["operator"]!["entity"]!["depot"]!["entity"]);

        // city → prefecture → [city, kitakata]: the city is written again inside the prefecture's ListRelationship but
        // not expanded again; the municipality that does not exist is left out of entityList.
        var city = Assert.Single((await (await Client.GetAsync(Url(("id", AizuCity), ("join", "inline"), ("joinLevel", "9")))).ReadJson()).AsArray())!;
        var prefecture = city["partOf"]!["entity"]!;
        Assert.Equal(Fukushima, prefecture["id"]!.GetValue<string>());
        var municipalities = prefecture["municipalities"]!["entityList"]!.AsArray();
        var again = Assert.Single(municipalities)!;
        Assert.Equal(AizuCity, again["id"]!.GetValue<string>());
        Assert.Null(again["partOf"]!["entity"]);

        // Simplified: the linked entity stands where its id was; concise keeps "object" beside "entity".
        var kv = Assert.Single((await (await Client.GetAsync(Url(("id", Gym), ("join", "inline"), ("options", "keyValues")))).ReadJson()).AsArray())!;
        Assert.Equal("会津若松市", kv["managedBy"]!["name"]!.GetValue<string>());
        var concise = Assert.Single((await (await Post($$"""{"type":"Query","entities":[{"id":"{{Gym}}"}],"join":"inline"}""", "?format=concise")).ReadJson()).AsArray())!;
        Assert.Equal(AizuCity, concise["managedBy"]!["object"]!.GetValue<string>());
        Assert.Equal("会津若松市", concise["managedBy"]!["entity"]!["name"]!.GetValue<string>());

        await (await Client.GetAsync(Url(("type", "Vehicle"), ("join", "sideways")))).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(Url(("type", "Vehicle"), ("join", "flat"), ("joinLevel", "0")))).AssertProblem(400, "BadRequestData");
        await (await Client.GetAsync(NgsiHttp.Entities + "/" + Bus1 + "?join=inline&containedBy=not%20a%20uri")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":[{"type":"Vehicle"}],"join":"flat","joinLevel":"deep"}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task DatasetId_returns_only_the_named_instances_of_multi_attributes()
    {
        var created = await Client.PostAsync(CreatePath, NgsiHttp.Json("""
            [{"id":"urn:ngsi-ld:WeatherObserved:tsurugajo","type":"WeatherObserved",
              "temperature":[{"type":"Property","value":-2.5},
                             {"type":"Property","value":-3.1,"datasetId":"urn:ngsi-ld:Dataset:roof"},
                             {"type":"Property","value":-1.0,"datasetId":"urn:ngsi-ld:Dataset:street"}],
              "snowDepth":{"type":"Property","value":35,"datasetId":"urn:ngsi-ld:Dataset:roof"}}]
            """));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        const string Station = "urn:ngsi-ld:WeatherObserved:tsurugajo";

        var roof = await (await Client.GetAsync(NgsiHttp.Entities + "/" + Station + "?datasetId=urn:ngsi-ld:Dataset:roof")).ReadJson();
        Assert.Equal(-3.1, roof["temperature"]!["value"]!.GetValue<double>());
        Assert.Equal(35, roof["snowDepth"]!["value"]!.GetValue<int>());

        // @none names the default instance; an attribute with none of the named instances is left out.
        var plain = Assert.Single((await (await Client.GetAsync(Url(("id", Station), ("datasetId", "@none")))).ReadJson()).AsArray())!;
        Assert.Equal(-2.5, plain["temperature"]!["value"]!.GetValue<double>());
        Assert.Null(plain["temperature"]!["datasetId"]);
        Assert.Null(plain["snowDepth"]);

        var two = Assert.Single((await (await Post($$"""{"type":"Query","entities":[{"id":"{{Station}}"}],"datasetId":["@none","urn:ngsi-ld:Dataset:street"]}""")).ReadJson()).AsArray())!;
        Assert.Equal([-2.5, -1.0], two["temperature"]!.AsArray().Select(t => t!["value"]!.GetValue<double>()));

        await (await Client.GetAsync(Url(("id", Station), ("datasetId", "not a uri")))).AssertProblem(400, "BadRequestData");
        await (await Post($$"""{"type":"Query","entities":[{"id":"{{Station}}"}],"datasetId":42}""")).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task ExpandValues_compares_the_named_attributes_with_their_values_expanded_by_the_context()
    {
        var created = await Client.PostAsync(CreatePath, NgsiHttp.Json("""
            [{"id":"urn:ngsi-ld:Building:aizu-castle","type":"Building",
              "category":{"type":"Property","value":"https://smartdatamodels.org/dataModel.Building/cultural"}},
             {"id":"urn:ngsi-ld:Building:aizu-station","type":"Building",
              "category":{"type":"Property","value":"cultural"}}]
            """));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var hosted = await Client.PostJson("/ngsi-ld/v1/jsonldContexts", """{"@context":{"cultural":"https://smartdatamodels.org/dataModel.Building/cultural"}}""");
        var contextUrl = hosted.Headers.Location!.OriginalString;

        async Task<string[]> Buildings(params (string, string)[] extra)
        {
            using var request = WithLink(new HttpRequestMessage(HttpMethod.Get, Url([("type", "Building"), ("q", "category==\"cultural\""), .. extra])), contextUrl);
            return await IdsOf(await Client.SendAsync(request));
        }

        // Without expandValues the string is compared as written; with it, as the IRI the context makes of it.
        Assert.Equal(["urn:ngsi-ld:Building:aizu-station"], await Buildings());
        Assert.Equal(["urn:ngsi-ld:Building:aizu-castle"], await Buildings(("expandValues", "category")));
        Assert.Equal(["urn:ngsi-ld:Building:aizu-station"], await Buildings(("expandValues", "name")));

        using var post = WithLink(new HttpRequestMessage(HttpMethod.Post, QueryPath)
        {
            Content = NgsiHttp.Json("""{"type":"Query","entities":[{"type":"Building"}],"q":"category==\"cultural\"","expandValues":["category"]}"""),
        }, contextUrl);
        Assert.Equal(["urn:ngsi-ld:Building:aizu-castle"], await IdsOf(await Client.SendAsync(post)));
    }

    [Fact]
    public async Task An_entity_map_fixes_the_entities_a_query_pages_through_until_it_is_deleted_or_expires()
    {
        var first = await Client.GetAsync(Url(("type", "Vehicle"), ("entityMap", "true"), ("limit", "2"), ("count", "true")));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("4", first.Headers.GetValues("NGSILD-Results-Count").Single());
        var mapId = first.Headers.GetValues("NGSILD-EntityMap").Single();
        Assert.StartsWith("urn:ngsi-ld:EntityMap:", mapId, StringComparison.Ordinal);
        var firstIds = (await first.ReadJson()).AsArray().Select(e => e!["id"]!.GetValue<string>()).ToList();
        Assert.Equal(2, firstIds.Count);

        // A vehicle created and one deleted after the map was made: the new one is not in the pages, the deleted one
        // drops out of its page, and nothing is seen twice.
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle("urn:ngsi-ld:Vehicle:aizu-bus-03"))).StatusCode);
        var second = await Client.GetAsync(Url(("type", "Vehicle"), ("entityMap", mapId), ("limit", "2"), ("offset", "2"), ("count", "true")));
        Assert.Equal(mapId, second.Headers.GetValues("NGSILD-EntityMap").Single());
        Assert.Equal("4", second.Headers.GetValues("NGSILD-Results-Count").Single());
        var secondIds = (await second.ReadJson()).AsArray().Select(e => e!["id"]!.GetValue<string>()).ToList();
        Assert.Equal(Set(Vehicles), Set([.. firstIds, .. secondIds]));
        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(NgsiHttp.Entities + "/" + secondIds[0])).StatusCode);
        Assert.Equal([secondIds[1]], await Get(("type", "Vehicle"), ("entityMap", mapId), ("limit", "2"), ("offset", "2")));

        // The map itself: every entity once, found here (@none); its maker may extend it; nobody else sees it.
        var map = await (await Client.GetAsync("/ngsi-ld/v1/entityMaps/" + mapId)).ReadJson();
        Assert.Equal("EntityMap", map["type"]!.GetValue<string>());
        Assert.Equal(Set(Vehicles), Set([.. map["entityMap"]!.AsObject().Select(e => e.Key)]));
        Assert.All(map["entityMap"]!.AsObject(), e => Assert.Equal("@none", e.Value!.AsArray().Single()!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.NoContent, (await Client.PatchJson("/ngsi-ld/v1/entityMaps/" + mapId, """{"expiresAt":"2099-01-01T00:00:00Z"}""")).StatusCode);
        Assert.Equal("2099-01-01T00:00:00Z", (await (await Client.GetAsync("/ngsi-ld/v1/entityMaps/" + mapId)).ReadJson())["expiresAt"]!.GetValue<string>());
        await (await Client.PatchJson("/ngsi-ld/v1/entityMaps/" + mapId, """{"expiresAt":"2001-01-01T00:00:00Z"}""")).AssertProblem(400, "BadRequestData");
        await (await _server.Anonymous.GetAsync("/ngsi-ld/v1/entityMaps/" + mapId)).AssertProblem(404, "ResourceNotFound");
        await (await _server.Anonymous.GetAsync(Url(("type", "Vehicle"), ("entityMap", mapId)))).AssertProblem(404, "ResourceNotFound");

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync("/ngsi-ld/v1/entityMaps/" + mapId)).StatusCode);
        await (await Client.GetAsync("/ngsi-ld/v1/entityMaps/" + mapId)).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync(Url(("type", "Vehicle"), ("entityMap", mapId)))).AssertProblem(404, "ResourceNotFound");
        await (await Client.GetAsync(Url(("type", "Vehicle"), ("entityMap", "sometimes")))).AssertProblem(400, "BadRequestData");
    }

    [Fact]
    public async Task Paging_and_counting_agree_whether_or_not_the_indexes_decide_alone()
    {
        // 30 street lights: luminosity 0, 10, …, 290; every third in /Aizu/Kita, the others in /Aizu/Minami.
        var lights = Enumerable.Range(0, 30).Select(i => new
        {
            Id = $"urn:ngsi-ld:StreetLight:aizu-{i:D3}",
            Luminosity = i * 10,
            Scope = i % 3 == 0 ? "/Aizu/Kita" : "/Aizu/Minami",
        }).ToList();
        var batch = "[" + string.Join(',', lights.Select(l => $$$"""
            {"id":"{{{l.Id}}}","type":"StreetLight","scope":"{{{l.Scope}}}","luminosity":{"type":"Property","value":{{{l.Luminosity}}}}}
            """)) + "]";
        Assert.Equal(HttpStatusCode.Created, (await Client.PostJson(CreatePath, batch)).StatusCode);

        var cases = new (string Name, (string, string)[] Parameters, string Body, IEnumerable<string> Expected)[]
        {
            ("type (index alone)", [("type", "StreetLight")], """{"type":"Query","entities":[{"type":"StreetLight"}]}""", lights.Select(l => l.Id)),
            ("attrs (index alone)", [("attrs", "luminosity")], """{"type":"Query","attrs":["luminosity"]}""", lights.Select(l => l.Id)),
            ("idPattern", [("idPattern", "^urn:ngsi-ld:StreetLight:.*[13579]$")], """{"type":"Query","entities":[{"idPattern":"^urn:ngsi-ld:StreetLight:.*[13579]$"}]}""", lights.Where((_, i) => i % 2 == 1).Select(l => l.Id)),
            ("scopeQ", [("scopeQ", "/Aizu/Kita"), ("type", "StreetLight")], """{"type":"Query","entities":[{"type":"StreetLight"}],"scopeQ":"/Aizu/Kita"}""", lights.Where(l => l.Scope == "/Aizu/Kita").Select(l => l.Id)),
            ("q", [("q", "luminosity>=55;luminosity<255")], """{"type":"Query","q":"luminosity>=55;luminosity<255"}""", lights.Where(l => l.Luminosity is >= 55 and < 255).Select(l => l.Id)),
        };

        foreach (var (name, parameters, body, expectedIds) in cases)
        {
            var expected = expectedIds.ToList();
            foreach (var post in new[] { false, true })
            {
                var seen = new List<string>();
                for (var offset = 0; offset <= expected.Count; offset += 4)
                {
                    var paging = $"limit=4&offset={offset}&count=true";
                    var response = post ? await Post(body, "?" + paging) : await Client.GetAsync(Url(parameters) + "&" + paging);
                    Assert.True(response.StatusCode == HttpStatusCode.OK, $"{name}: {await response.Content.ReadAsStringAsync()}");
                    Assert.Equal(expected.Count.ToString(CultureInfo.InvariantCulture), response.Headers.GetValues("NGSILD-Results-Count").Single());
                    var page = (await response.ReadJson()).AsArray().Select(e => e!["id"]!.GetValue<string>()).ToList();
                    Assert.Equal(Math.Min(4, expected.Count - offset), page.Count);
                    seen.AddRange(page);
                }

                // Pages follow one order, so together they are the whole answer exactly once.
                Assert.True(expected.Order(StringComparer.Ordinal).SequenceEqual(seen.Order(StringComparer.Ordinal)), $"{name} (post={post}): [{string.Join(' ', seen)}]");
                Assert.Equal(expected.Count, seen.Distinct().Count());
            }

            var countOnly = await Client.GetAsync(Url(parameters) + "&limit=0&count=true");
            Assert.Equal(expected.Count.ToString(CultureInfo.InvariantCulture), countOnly.Headers.GetValues("NGSILD-Results-Count").Single());
            Assert.Empty((await countOnly.ReadJson()).AsArray());
            var beyond = await Client.GetAsync(Url(parameters) + "&offset=1000&count=true");
            Assert.Equal(expected.Count.ToString(CultureInfo.InvariantCulture), beyond.Headers.GetValues("NGSILD-Results-Count").Single());
            Assert.Empty((await beyond.ReadJson()).AsArray());
        }

        // Without count there is no header, and the default page size applies.
        var plain = await Client.GetAsync(Url(("type", "StreetLight")));
        Assert.False(plain.Headers.Contains("NGSILD-Results-Count"));
        Assert.Equal(20, (await plain.ReadJson()).AsArray().Count);
    }

    [Fact]
    public async Task A_limit_above_Broker_MaxLimit_is_TooManyResults_and_the_default_page_never_exceeds_it()
    {
        await using var small = await backend.StartAsync(settings: new Dictionary<string, string?> { ["Broker:MaxLimit"] = "5" });
        await SeedAsync(small.Client);

        Assert.Contains("5", await (await small.Client.GetAsync(Url(("type", "Vehicle,Shelter"), ("limit", "6")))).AssertProblem(403, "TooManyResults"), StringComparison.Ordinal);
        await (await small.Client.PostJson(QueryPath + "?limit=6", """{"type":"Query","entities":[{"type":"Shelter"}]}""")).AssertProblem(403, "TooManyResults");
        Assert.Equal(5, (await (await small.Client.GetAsync(Url(("type", "Vehicle,Shelter"), ("limit", "5")))).ReadJson()).AsArray().Count);

        // No limit given: the broker's default page (20) is cut to its maximum rather than refused.
        var noLimit = await small.Client.GetAsync(Url(("type", "Vehicle,Shelter"), ("count", "true")));
        Assert.Equal(HttpStatusCode.OK, noLimit.StatusCode);
        Assert.Equal("8", noLimit.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.Equal(5, (await noLimit.ReadJson()).AsArray().Count);
        Assert.Equal(5, (await (await small.Client.PostJson(QueryPath, """{"type":"Query","entities":[{"type":"Vehicle,Shelter"}]}""")).ReadJson()).AsArray().Count);

        await (await Client.GetAsync(Url(("type", "Vehicle"), ("limit", "1001")))).AssertProblem(403, "TooManyResults");
    }

    [Fact]
    public async Task Malformed_query_bodies_are_rejected_with_400()
    {
        await (await Post("{\"type\":\"Query\",")).AssertProblem(400, "InvalidRequest");
        await (await Post("[{\"type\":\"Query\"}]")).AssertProblem(400, "BadRequestData");
        await (await Post("\"Query\"")).AssertProblem(400, "BadRequestData");
        Assert.Contains("Query", await (await Post("""{"type":"Subscription","entities":[{"type":"Vehicle"}]}""")).AssertProblem(400, "BadRequestData"), StringComparison.Ordinal);
        await (await Post("""{"type":7,"entities":[{"type":"Vehicle"}]}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":[]}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":{"type":"Vehicle"}}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":[{}]}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","entities":["Vehicle"]}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","attrs":[]}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","attrs":[1,2]}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","pick":"a b"}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","scopeQ":""}""")).AssertProblem(400, "BadRequestData");
        // Like GET /entities, a query must say what it is about.
        await (await Post("""{"type":"Query"}""")).AssertProblem(400, "BadRequestData");
        await (await Post("""{"type":"Query","lang":"ja"}""")).AssertProblem(400, "BadRequestData");
        Assert.Equal(Set(Everything), await IdsOf(await Post("""{"type":"Query"}""", "?local=true")));
        await (await Client.PostJson(QueryPath, string.Empty)).AssertProblem(400, "InvalidRequest");
        await (await Client.PostJson(QueryPath, """{"type":"Query","entities":[{"type":"Vehicle"}]}""", "text/plain")).AssertProblem(415, "UnsupportedMediaType");
        await (await Post("""{"type":"Query","entities":[{"type":"Vehicle"}],"temporalQ":{}}""")).AssertProblem(422, "OperationNotSupported");
    }

    [Fact]
    public async Task Tenants_see_only_their_own_entities()
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, CreatePath)
        {
            Content = NgsiHttp.Json("""
                [{"id":"urn:ngsi-ld:Vehicle:kitakata-bus","type":"Vehicle","speed":{"type":"Property","value":55},"scope":"/Kitakata"}]
                """),
        };
        create.Headers.Add("NGSILD-Tenant", "kitakata");
        Assert.Equal(HttpStatusCode.Created, (await Client.SendAsync(create)).StatusCode);

        async Task<string[]> InTenant(string tenant, HttpRequestMessage request)
        {
            request.Headers.Add("NGSILD-Tenant", tenant);
            using (request)
            {
                return await IdsOf(await Client.SendAsync(request));
            }
        }

        Assert.Equal(["urn:ngsi-ld:Vehicle:kitakata-bus"], await InTenant("kitakata", new HttpRequestMessage(HttpMethod.Get, Url(("type", "Vehicle")))));
        Assert.Equal(["urn:ngsi-ld:Vehicle:kitakata-bus"], await InTenant("kitakata", new HttpRequestMessage(HttpMethod.Get, Url(("q", "speed>40")))));
        Assert.Empty(await InTenant("kitakata", new HttpRequestMessage(HttpMethod.Get, Url(("scopeQ", "/Aizu/#")))));
        Assert.Equal(["urn:ngsi-ld:Vehicle:kitakata-bus"], await InTenant("kitakata", new HttpRequestMessage(HttpMethod.Post, QueryPath)
        {
            Content = NgsiHttp.Json("""{"type":"Query","entities":[{"type":"Vehicle"}],"scopeQ":"/Kitakata"}"""),
        }));
        Assert.Equal(Set(Bus1, Taxi), await Get(("q", "speed>40")));
        Assert.Empty(await Get(("scopeQ", "/Kitakata")));

        using var unknown = new HttpRequestMessage(HttpMethod.Post, QueryPath) { Content = NgsiHttp.Json("""{"type":"Query","entities":[{"type":"Vehicle"}]}""") };
        unknown.Headers.Add("NGSILD-Tenant", "nowhere");
        await (await Client.SendAsync(unknown)).AssertProblem(404, "NonexistentTenant");
    }

    [Fact]
    public async Task Queries_follow_updates_and_deletes()
    {
        Assert.Equal(HttpStatusCode.NoContent, (await Client.PatchJson(NgsiHttp.Entities + "/" + Bus1 + "/attrs", """{"speed":{"type":"Property","value":5}}""")).StatusCode);
        Assert.Equal(Set(Taxi), await Get(("q", "speed>40")));
        Assert.Equal(Set(Bus1, Bus2), await Get(("q", "speed<10")));

        // The second bus drives to the castle: the R*Tree follows the new position.
        Assert.Equal(HttpStatusCode.NoContent, (await Client.PatchJson(NgsiHttp.Entities + "/" + Bus2 + "/attrs", """{"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.4878]}}}""")).StatusCode);
        Assert.Equal(Set(Bus2), await Get(("type", "Vehicle"), ("georel", "near;maxDistance==50"), ("geometry", "Point"), ("coordinates", CastlePoint)));
        Assert.Empty(await Get(("georel", "near;maxDistance==5"), ("geometry", "Point"), ("coordinates", "[139.9298,37.496665]")));
        Assert.Equal(Set(Bus1, Bus2, Gym, School, District), await Get(("georel", "within"), ("geometry", "Polygon"), ("coordinates", DistrictPolygon)));

        var merge = await Client.PatchJson(NgsiHttp.Entities + "/" + Plow, """{"scope":"/Aizu/Kita","serviceStatus":"parked"}""", "application/merge-patch+json");
        Assert.Equal(HttpStatusCode.NoContent, merge.StatusCode);
        Assert.Empty(await Get(("scopeQ", "/Maintenance")));
        Assert.Equal(Set(Bus2, Plow), await Get(("scopeQ", "/Aizu/Kita")));
        Assert.Equal(Set(Bus2, Plow), await Get(("q", "serviceStatus==\"parked\"")));

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(NgsiHttp.Entities + "/" + Bus1 + "/attrs/tags")).StatusCode);
        Assert.Empty(await Get(("q", "tags==\"lowFloor\"")));
        Assert.Equal(Set(Bus2), await Get(("attrs", "tags")));

        Assert.Equal(HttpStatusCode.NoContent, (await Client.DeleteAsync(NgsiHttp.Entities + "/" + Onsen)).StatusCode);
        Assert.Equal(Set(Gym), await Get(("q", "heated==true")));
        Assert.Empty(await Get(("scopeQ", "/Higashiyama/#")));
        Assert.Equal(HttpStatusCode.NoContent, (await Client.PostJson("/ngsi-ld/v1/entityOperations/delete", $"[\"{District}\",\"{Minami}\"]")).StatusCode);
        var count = await Client.GetAsync(Url(("type", "Shelter,District"), ("count", "true")));
        Assert.Equal("2", count.Headers.GetValues("NGSILD-Results-Count").Single());
        Assert.Equal(Set(Gym, School), await IdsOf(count));
        Assert.Equal(Set(Bus1, Bus2, Gym, School), await Get(("georel", "within"), ("geometry", "Polygon"), ("coordinates", DistrictPolygon)));

        // Replacing an entity drops its old values from every index.
        Assert.Equal(HttpStatusCode.NoContent, (await Client.PutJson(NgsiHttp.Entities + "/" + Taxi, """{"type":"Vehicle","serviceStatus":"active"}""")).StatusCode);
        Assert.Empty(await Get(("q", "speed>40")));
        Assert.Empty(await Get(("georel", "disjoint"), ("geometry", "Polygon"), ("coordinates", DistrictPolygon), ("type", "Vehicle"), ("idPattern", "taxi")));
        Assert.Equal(Set(Bus1, Taxi), await Get(("q", "serviceStatus==\"active\"")));
    }

    [Fact]
    public async Task Queries_answer_the_same_after_a_restart_on_the_same_data_directory()
    {
        var directory = TempDirectory.Create("machi-query-restart-");
        try
        {
            (string, string)[][] queries =
            [
                [("type", "(Shelter;School)|District")],
                [("q", "speed>40|capacity.reservedFor>=10")],
                [("type", "Vehicle"), ("georel", "near;maxDistance==1000"), ("geometry", "Point"), ("coordinates", CastlePoint)],
                [("georel", "within"), ("geometry", "Polygon"), ("coordinates", DistrictPolygon)],
                [("scopeQ", "/Aizu/Kita/#")],
                [("idPattern", "bus-0[12]$"), ("attrs", "speed")],
                [("q", "name[ja]~=号$")],
            ];
            string[][] expected =
            [
                Set(School, District),
                Set(Bus1, Taxi, Gym, School),
                Set(Bus1, Plow),
                Set(Bus1, Plow, Gym, School, District),
                Set(Bus1, School),
                Set(Bus1),
                Set(Bus1, Plow),
            ];

            await using (var first = await backend.StartAsync(dataDirectory: directory))
            {
                await SeedAsync(first.Client);
                // Writes before the restart: Bus2 is deleted, the snowplow moves within 1000 m and changes scope.
                Assert.Equal(HttpStatusCode.NoContent, (await first.Client.DeleteAsync(NgsiHttp.Entities + "/" + Bus2)).StatusCode);
                Assert.Equal(HttpStatusCode.NoContent, (await first.Client.PatchJson(NgsiHttp.Entities + "/" + Plow + "/attrs", """
                    {"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.9298,37.49]}}}
                    """)).StatusCode);
                for (var i = 0; i < queries.Length; i++)
                {
                    Assert.Equal(expected[i], await IdsOf(await first.Client.GetAsync(Url(queries[i]))));
                }
            }

            await using var second = await backend.StartAsync(dataDirectory: directory);
            for (var i = 0; i < queries.Length; i++)
            {
                Assert.Equal(expected[i], await IdsOf(await second.Client.GetAsync(Url(queries[i]))));
            }

            // The indexes keep following writes after the restart.
            Assert.Equal(HttpStatusCode.NoContent, (await second.Client.PatchJson(NgsiHttp.Entities + "/" + Gym + "/attrs", """{"capacity":{"type":"Property","value":5}}""")).StatusCode);
            Assert.Equal(Set(Bus1, Taxi, School), await IdsOf(await second.Client.GetAsync(Url(queries[1]))));
        }
        finally
        {
            TempDirectory.Delete(directory);
        }
    }

    [Fact]
    public async Task Garbled_query_parameters_never_cause_a_5xx_and_leave_the_data_unchanged()
    {
        const string snapshotUrl = NgsiHttp.Entities + "?local=true&limit=1000&options=sysAttrs";
        var before = await Client.GetStringAsync(snapshotUrl);

        string[] fragments =
        [
            "speed", "capacity", "name", "location", "entrance", "Vehicle", "Shelter", "urn:ngsi-ld:Vehicle:", ">", "<", "==", "!=", ">=", "~=", "!~=",
            "!", "..", ",", ";", "|", "(", ")", "[", "]", ".", "\"", "\\", "'", "42", "-1e999", "1e400", "NaN", "0x10", "2026-11-25T08:00:00Z",
            "2026-02-30", "25:61:00", "true", "(?i)", "(?<=a)", "*", "+", "#", "/", "/Aizu", "/#", "/+", "near", "maxDistance", "minDistance",
            "within", "contains", "equals", "Point", "Polygon", "[139.93,37.49]", "[[[", "]]]", "null", "{}", "\u0000", "会津", " ",
            "%", "&", "=", "?", "observedAt", "@context", "urn:ngsi-ld:null", "\n",
        ];
        string[] parameters = ["q", "type", "idPattern", "georel", "coordinates", "geometry", "geoproperty", "scopeQ", "pick", "omit", "attrs", "id", "lang"];
        var text = Gen.OneOf(
            Gen.Int[0, fragments.Length - 1].Array[1, 12].Select(ix => string.Concat(ix.Select(i => fragments[i]))),
            Gen.Char[(char)1, (char)0x3000].Array[1, 20].Select(c => new string(c)));
        var request = Gen.Select(Gen.Int[0, parameters.Length - 1].Array[1, 4], text.Array[4], Gen.Bool);

        var failures = new List<string>();
        var answered = 0;
        foreach (var (names, values, post) in request.Array[500].Single())
        {
            HttpResponseMessage response;
            string description;
            if (post)
            {
                var body = new JsonObject { ["type"] = "Query" };
                for (var i = 0; i < names.Length; i++)
                {
                    var name = parameters[names[i]];
                    switch (name)
                    {
                        case "type" or "idPattern" or "id":
                            body["entities"] = new JsonArray(new JsonObject { [name] = values[i] });
                            break;
                        case "georel" or "coordinates" or "geometry" or "geoproperty":
                            var geoQ = body["geoQ"] as JsonObject ?? new JsonObject { ["georel"] = "near;maxDistance==100", ["geometry"] = "Point", ["coordinates"] = new JsonArray(139.93, 37.49) };
                            geoQ[name] = values[i];
                            body["geoQ"] = geoQ;
                            break;
                        default:
                            body[name] = values[i];
                            break;
                    }
                }

                description = "POST " + body.ToJsonString();
                response = await Client.PostAsync(QueryPath, NgsiHttp.Json(body.ToJsonString()));
            }
            else
            {
                var url = Url(names.Distinct().Select((n, i) => (parameters[n], values[i])).ToArray());
                description = "GET " + url;
                response = await Client.GetAsync(url);
            }

            var status = (int)response.StatusCode;
            var content = await response.Content.ReadAsStringAsync();
            if (status == 200)
            {
                answered++;
                continue;
            }

            if (status is < 400 or >= 500 || !IsProblem(content, status))
            {
                failures.Add($"{description} -> {status} {content}");
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures.Take(5)));
        Assert.True(answered > 0, "no garbled query was answered: the generator only reaches error paths");
        Assert.Equal(before, await Client.GetStringAsync(snapshotUrl));
    }

    private static bool IsProblem(string content, int status)
    {
        try
        {
            var problem = JsonNode.Parse(content);
            return problem?["type"]?.GetValue<string>().StartsWith("https://uri.etsi.org/ngsi-ld/errors/", StringComparison.Ordinal) == true
                && problem["status"]?.GetValue<int>() == status
                && problem["detail"]?.GetValue<string>() is { Length: > 0 };
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

public sealed class QueryApiTestsOnSqlite() : QueryApiTests(Backend.Sqlite);

[Collection(PostgresGroup.Name)]
public sealed class QueryApiTestsOnPostgres(PostgresServer postgres) : QueryApiTests(Backend.Postgres(postgres));
