using System.Text;
using Machi.Portal.Feed;
using Machi.Portal.Storage;
using Machi.Portal.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Machi.Portal.Profiles;

/// <summary>
/// The resident's profile: attributes they choose to share (opt-in) so the feed shows notices for them; they can
/// clear it at any time, and then see every public notice again.
/// </summary>
internal static class ProfilePages
{
    public static IEndpointRouteBuilder MapProfilePages(this IEndpointRouteBuilder app)
    {
        app.MapGet("/portal/profile", (Delegate)Show).ExcludeFromDescription();
        app.MapPost("/portal/profile", Save).ExcludeFromDescription();
        app.MapPost("/portal/profile/delete", (Delegate)Delete).ExcludeFromDescription();
        return app;
    }

    private static async Task<IResult> Show(HttpContext http)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        var profile = await page.Store.GetProfileAsync(page.Viewer.UserId!, page.Aborted);
        var notice = http.Request.Query["done"].ToString() switch
        {
            "saved" => page.Notice("profile_saved"),
            "deleted" => page.Notice("profile_deleted"),
            _ => "",
        };
        return await RenderAsync(page, profile, notice, null);
    }

    private static async Task<IResult> RenderAsync(PortalPage page, Profile? profile, string notice, string? districtError)
    {
        var body = new StringBuilder(notice)
            .Append("<p>").Append(PortalPage.E(page.T("profile_intro"))).Append("</p>")
            .Append("<p class=\"small\" data-profile-state=\"").Append(profile is null ? "none" : "set").Append("\">")
            .Append(PortalPage.E(page.T(profile is null ? "profile_none" : "profile_set"))).Append("</p>");
        var fields = new StringBuilder()
            .Append(Fields.Select(page, "district", page.T("profile_district"), Fields.Districts(), profile?.District,
                help: page.T("profile_district_help"), error: districtError, emptyText: page.T("not_told")))
            .Append(Fields.Choices("age_group", page.T("profile_age"),
                [("", page.T("not_told")), .. Targeting.AgeGroups.Select(a => (a, page.T("age_" + a)))],
                profile?.AgeGroup is { } age ? [age] : [""], radio: true))
            .Append(Fields.Choices("household", page.T("profile_household"), Targeting.Household.Select(h => (h, page.T("household_" + h))),
                profile?.Household ?? []))
            .Append(Fields.Choices("interests", page.T("profile_interests"), Targeting.Interests.Select(i => (i, page.T("interest_" + i))),
                profile?.Interests ?? []));
        body.Append(page.Form("/portal/profile", fields.ToString(), "profile_save"));
        if (profile is not null)
        {
            body.Append("<h2>").Append(PortalPage.E(page.T("profile_delete_title"))).Append("</h2><p>").Append(PortalPage.E(page.T("profile_delete_help"))).Append("</p>")
                .Append(page.Form("/portal/profile/delete", "", "profile_delete", buttonClass: "secondary"));
        }

        return await page.RenderAsync("profile_title", body.ToString(), districtError is null ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    private static async Task<IResult> Save(HttpContext http, TimeProvider time)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        if (await page.ReadFormAsync() is not { } form)
        {
            return await page.FormExpiredAsync();
        }

        var district = form["district"].ToString().Trim();
        var age = form["age_group"].ToString();
        var profile = new Profile(
            page.Viewer.UserId!,
            district.Length == 0 ? null : district,
            Targeting.AgeGroups.Contains(age) ? age : null,
            Targeting.Known(form["household"].Select(v => v ?? ""), Targeting.Household),
            Targeting.Known(form["interests"].Select(v => v ?? ""), Targeting.Interests),
            time.GetUtcNow());
        if (profile.District is not null && !Towns.IsKnown(profile.District))
        {
            return await RenderAsync(page, profile with { District = null }, "", page.T("v_not_district"));
        }

        await page.Store.SaveProfileAsync(profile, page.Aborted);
        return Results.Redirect("/portal/profile?done=saved");
    }

    private static async Task<IResult> Delete(HttpContext http)
    {
        var page = await PortalPage.ForAsync(http);
        if (!page.Viewer.IsSignedIn)
        {
            return page.LoginRedirect();
        }

        if (await page.ReadFormAsync() is null)
        {
            return await page.FormExpiredAsync();
        }

        await page.Store.DeleteProfileAsync(page.Viewer.UserId!, page.Aborted);
        return Results.Redirect("/portal/profile?done=deleted");
    }
}
