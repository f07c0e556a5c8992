using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Machi.Trust.Accounts;

/// <summary>
/// Puts the account's role (the <c>role</c> claim, as in tokens) into the sign-in cookie too, so pages can require a
/// role (<c>RequireRole("staff")</c>) for people signed in with the Machi login.
/// </summary>
internal sealed class RoleClaimsPrincipalFactory(UserManager<MachiUser> users, IOptions<IdentityOptions> options)
    : UserClaimsPrincipalFactory<MachiUser>(users, options)
{
    protected override async Task<ClaimsIdentity> GenerateClaimsAsync(MachiUser user)
    {
        ArgumentNullException.ThrowIfNull(user);
        var identity = await base.GenerateClaimsAsync(user).ConfigureAwait(false);
        identity.AddClaim(new Claim(Options.ClaimsIdentity.RoleClaimType, user.Role));
        return identity;
    }
}
