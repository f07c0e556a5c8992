using Microsoft.AspNetCore.Identity;

namespace Machi.Trust.Accounts;

/// <summary>An account: a resident who signed up, or staff, a clinician, a merchant or a producer made by staff.</summary>
public sealed class MachiUser : IdentityUser
{
    /// <summary>One of <see cref="AccountRoles"/>.</summary>
    public string Role { get; set; } = AccountRoles.Resident;

    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The kinds of account (the <c>role</c> claim of their tokens).</summary>
public static class AccountRoles
{
    /// <summary>市民: signs up by themselves.</summary>
    public const string Resident = "resident";

    /// <summary>職員: city staff.</summary>
    public const string Staff = "staff";

    public const string Clinician = "clinician";
    public const string Merchant = "merchant";
    public const string Producer = "producer";

    public static IReadOnlyList<string> All { get; } = [Resident, Staff, Clinician, Merchant, Producer];

    public static bool IsKnown(string role) => All.Contains(role, StringComparer.Ordinal);
}
