using Machi.Trust.Accounts;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Machi.Portal.Web;

/// <summary>Who is looking at a portal page: anonymous, or a signed-in account with its role.</summary>
internal sealed record Viewer(string? UserId, string? Email, string? Role)
{
    public static Viewer Anonymous { get; } = new(null, null, null);

    public bool IsSignedIn => UserId is not null;

    public bool IsStaff => Role == AccountRoles.Staff;

    /// <summary>
    /// Reads Trust's sign-in cookie. Trust runs authentication only on its own paths and on endpoints that demand it,
    /// and portal pages are open to everyone, so the portal authenticates here itself.
    /// </summary>
    public static async Task<Viewer> OfAsync(HttpContext http)
    {
        if (http.User.Identity?.IsAuthenticated != true)
        {
            var result = await http.AuthenticateAsync(IdentityConstants.ApplicationScheme);
            if (!result.Succeeded)
            {
                return Anonymous;
            }

            http.User = result.Principal;
        }

        var users = http.RequestServices.GetRequiredService<UserManager<MachiUser>>();
        var user = await users.GetUserAsync(http.User);
        return user is null ? Anonymous : new Viewer(user.Id, user.Email, user.Role);
    }
}
