using System.Net;

namespace Machi.Portal.Tests;

/// <summary>The back office is for staff only: anonymous people are sent to sign in, residents get 403.</summary>
public sealed class StaffAccessTests(PortalServer portal) : IClassFixture<PortalServer>
{
    private static readonly string[] Paths = ["/portal/staff", "/portal/staff/notices", "/portal/staff/alerts", "/portal/staff/queue", "/portal/staff/procedures", "/portal/staff/applications/1"];

    public static TheoryData<string> StaffPages => [.. Paths];

    [Theory]
    [MemberData(nameof(StaffPages))]
    public async Task Anonymous_people_are_sent_to_sign_in(string path)
    {
        using var anonymous = new PortalClient(portal.Server.BaseAddress);

        var (status, _, location) = await anonymous.GetAsync(path);

        Assert.Equal(HttpStatusCode.Redirect, status);
        Assert.StartsWith("/account/login?ReturnUrl=", location!.OriginalString, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(StaffPages))]
    public async Task Residents_are_refused(string path)
    {
        using var resident = await portal.ResidentAsync();

        var (status, html, _) = await resident.GetAsync(path);

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("data-error=\"forbidden\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_resident_cannot_publish_issue_alerts_or_change_a_status_even_with_a_valid_token()
    {
        using var resident = await portal.ResidentAsync();

        var notice = await resident.PostFormAsync("/", "/portal/staff/notices", [new("title_ja", "偽"), new("body_ja", "偽"), new("category", "general")]);
        var alert = await resident.PostFormAsync("/", "/portal/staff/alerts", [new("level", "evacuate"), new("title_ja", "偽"), new("body_ja", "偽")]);
        var change = await resident.PostFormAsync("/", "/portal/staff/applications/1/status", [new("status", "completed"), new("expected", "submitted")]);

        Assert.Equal(HttpStatusCode.Forbidden, notice.Status);
        Assert.Equal(HttpStatusCode.Forbidden, alert.Status);
        Assert.Equal(HttpStatusCode.Forbidden, change.Status);
        var (_, home, _) = await resident.GetAsync("/");
        Assert.DoesNotContain("data-alert=", home, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Staff_see_every_back_office_page_and_the_menu_links_to_it()
    {
        using var staff = await portal.StaffAsync();

        foreach (var path in Paths.Where(p => !p.Contains("/applications/", StringComparison.Ordinal)))
        {
            var (status, _, _) = await staff.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, status);
        }

        var (_, home, _) = await staff.GetAsync("/");
        Assert.Contains("href=\"/portal/staff\"", home, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Staff_define_a_procedure_as_data_and_a_broken_definition_is_explained()
    {
        using var staff = await portal.StaffAsync();
        const string definition = """
            {"code":"inu-touroku","title":{"ja":"犬の登録","en":"Dog registration"},"description":{"ja":"飼い犬を登録します。","en":"Register your dog."},
             "department":{"ja":"環境生活課","en":"Environment Division"},
             "fields":[{"name":"dog_name","type":"text","label":{"ja":"犬の名前","en":"Dog's name"},"required":true,"maxLength":20}]}
            """;

        var (broken, brokenHtml, _) = await staff.PostFormAsync("/portal/staff/procedures", "/portal/staff/procedures",
            [new("definition", definition.Replace("\"text\"", "\"colour\"", StringComparison.Ordinal)), new("active", "yes")]);
        var (saved, _, _) = await staff.PostFormAsync("/portal/staff/procedures", "/portal/staff/procedures", [new("definition", definition), new("active", "yes")]);
        var (_, list, _) = await staff.GetAsync("/portal/procedures?lang=en");
        var (formStatus, form, _) = await staff.GetAsync("/portal/procedures/inu-touroku");

        Assert.Equal(HttpStatusCode.BadRequest, broken);
        Assert.Contains("dog_name: type must be one of", brokenHtml, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, saved);
        Assert.Contains("Dog registration", list, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, formStatus);
        Assert.Contains("name=\"dog_name\"", form, StringComparison.Ordinal);
    }
}
