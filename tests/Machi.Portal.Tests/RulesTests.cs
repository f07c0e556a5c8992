using CsCheck;
using Machi.Portal.Feed;
using Machi.Portal.Procedures;
using Machi.Portal.Storage;
using Machi.Portal.Web;

namespace Machi.Portal.Tests;

/// <summary>The pure rules: targeting, form validation, file sniffing, procedure definitions, texts.</summary>
public sealed class RulesTests
{
    private static Audience A(string[]? d = null, string[]? a = null, string[]? h = null, string[]? i = null) => new(d ?? [], a ?? [], h ?? [], i ?? []);

    [Fact]
    public void A_notice_for_everyone_matches_anyone_even_without_attributes() =>
        Assert.True(Targeting.Matches(Audience.Everyone, A()));

    [Fact]
    public void A_targeted_notice_needs_every_targeted_dimension_to_match()
    {
        var notice = A(d: ["一箕町大字八幡"], h: ["children"]);

        Assert.True(Targeting.Matches(notice, A(d: ["一箕町大字八幡"], h: ["children", "elderly"])));
        Assert.False(Targeting.Matches(notice, A(d: ["一箕町大字八幡"])));
        Assert.False(Targeting.Matches(notice, A(d: ["北会津町古舘"], h: ["children"])));
    }

    [Fact]
    public void Without_a_profile_the_feed_is_every_notice_and_with_one_it_marks_those_for_you()
    {
        var now = DateTimeOffset.UtcNow;
        Notice N(long id, Audience audience) => new(id, new("t", "t"), new("b", "b"), "general", audience, now, null, "x", now);
        IReadOnlyList<Notice> all = [N(1, Audience.Everyone), N(2, A(d: ["一箕町大字八幡"])), N(3, A(a: ["75plus"]))];

        Assert.Equal([1L, 2, 3], Targeting.Feed(all, null).Select(f => f.Notice.Id));
        var mine = Targeting.Feed(all, new Profile("u", "一箕町大字八幡", "18to39", [], [], now));
        Assert.Equal([(1L, false), (2L, true)], mine.Select(f => (f.Notice.Id, f.ForYou)));
    }

    [Fact]
    public void The_town_list_has_every_machiaza_of_the_city() =>
        Assert.Equal(262, Towns.All.Count);

    [Theory]
    [InlineData(new byte[] { 0x25, 0x50, 0x44, 0x46, 0x2D, 0x31 }, "application/pdf")]
    [InlineData(new byte[] { 0xFF, 0xD8, 0xFF, 0xE0 }, "image/jpeg")]
    [InlineData(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, "image/png")]
    [InlineData(new byte[] { 0x3C, 0x68, 0x74, 0x6D, 0x6C }, null)]
    [InlineData(new byte[] { }, null)]
    public void Files_are_known_by_their_first_bytes(byte[] head, string? type) =>
        Assert.Equal(type, FileTypes.Sniff(head));

    [Fact]
    public void Validation_normalises_good_answers_and_names_each_bad_one()
    {
        var definition = SeedProcedures.All.Single(p => p.Code == "sodai-gomi");
        var today = new DateOnly(2026, 12, 1);
        var good = new Dictionary<string, string>
        {
            ["name"] = " 会津 太郎 ", ["phone"] = "0242-39-1234", ["district"] = "一箕町大字八幡", ["address"] = "1", ["items"] = "たんす",
            ["count"] = "3", ["date"] = "2026-12-08", ["place"] = "entrance", ["ticket"] = "yes",
        };

        var (values, errors) = FormValidator.Validate(definition, n => good.GetValueOrDefault(n), today);
        Assert.Empty(errors);
        Assert.Equal("会津 太郎", values["name"]);

        var bad = new Dictionary<string, string>(good) { ["count"] = "11", ["date"] = "2026-12-07", ["place"] = "roof", ["phone"] = "x", ["items"] = new string('あ', 501) };
        (_, errors) = FormValidator.Validate(definition, n => bad.GetValueOrDefault(n), today);
        Assert.Equal(
            [("phone", "v_not_tel"), ("items", "v_too_long"), ("count", "v_out_of_range"), ("date", "v_too_soon"), ("place", "v_not_option")],
            errors.Select(e => (e.Field, e.Code)));
    }

    [Fact]
    public void Validation_never_throws_on_any_input()
    {
        var definition = SeedProcedures.All[1];
        Gen.String.Array[definition.Fields.Count].Sample((string[] values) =>
        {
            var (_, errors) = FormValidator.Validate(definition, n => values[definition.Fields.ToList().FindIndex(f => f.Name == n)], new DateOnly(2026, 1, 1));
            Assert.NotNull(errors);
        });
    }

    [Fact]
    public void The_seeded_definitions_round_trip_through_JSON()
    {
        foreach (var definition in SeedProcedures.All)
        {
            var parsed = ProcedureDefinition.Parse(definition.ToJson(), out var errors);
            Assert.Empty(errors);
            Assert.Equal(definition.ToJson(), parsed!.ToJson());
        }
    }

    [Theory]
    [InlineData("not json", "JSON:")]
    [InlineData("""{"code":"X!","title":{"ja":"a","en":"b"},"description":{"ja":"","en":""},"department":{"ja":"d","en":"d"},"fields":[{"name":"a","type":"text","label":{"ja":"a","en":"a"}}]}""", "code:")]
    [InlineData("""{"code":"ok","title":{"ja":"a","en":"b"},"description":{"ja":"","en":""},"department":{"ja":"d","en":"d"},"fields":[{"name":"a","type":"select","label":{"ja":"a","en":"a"}}]}""", "a select needs options")]
    [InlineData("""{"code":"ok","title":{"ja":"a","en":"b"},"description":{"ja":"","en":""},"department":{"ja":"d","en":"d"},"fields":[{"name":"a","type":"text","label":{"ja":"a","en":"a"}}],"attachments":[{"name":"a","label":{"ja":"f","en":"f"}}]}""", "must be unique")]
    [InlineData("""{"code":"ok","title":{"ja":"a","en":"b"},"description":{"ja":"","en":""},"department":{"ja":"d","en":"d"},"fields":[{"name":"a","type":"text","label":{"ja":"a","en":"a"},"pattern":"("}]}""", "pattern is not a valid")]
    public void A_broken_definition_is_explained(string json, string problem)
    {
        Assert.Null(ProcedureDefinition.Parse(json, out var errors));
        Assert.Contains(errors, e => e.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Every_vocabulary_term_has_Japanese_and_English()
    {
        var keys = Targeting.AgeGroups.Select(a => "age_" + a)
            .Concat(Targeting.Household.Select(h => "household_" + h))
            .Concat(Targeting.Interests.Select(i => "interest_" + i))
            .Concat(Machi.Portal.Staff.StaffPages.Categories.Select(c => "category_" + c))
            .Concat(SubmissionStatus.All.Select(s => "status_" + s))
            .Concat(Machi.Portal.Alerts.AlertBanner.Levels.Select(l => "alert_level_" + l));
        Assert.All(keys, key => Assert.True(Texts.Has(key), key));
    }
}
