using Machi.Trust.Mail;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.WebUtilities;
using System.Text;

namespace Machi.Trust.Accounts;

/// <summary>Creating accounts and sending their verification and reset mail.</summary>
internal sealed class AccountService(UserManager<MachiUser> users, IMailSender mail, TimeProvider time)
{
    /// <summary>An account made by staff (or <c>machi user add</c>): its e-mail is taken as verified.</summary>
    public async Task<(MachiUser? User, IReadOnlyList<string> Errors)> CreateAsync(
        string role, string email, string password, bool emailConfirmed)
    {
        if (!AccountRoles.IsKnown(role))
        {
            return (null, [$"unknown role '{role}' (one of {string.Join(", ", AccountRoles.All)})"]);
        }

        var user = new MachiUser
        {
            UserName = email.Trim(),
            Email = email.Trim(),
            Role = role,
            EmailConfirmed = emailConfirmed,
            CreatedAt = time.GetUtcNow(),
        };
        var result = await users.CreateAsync(user, password).ConfigureAwait(false);
        return result.Succeeded ? (user, []) : (null, result.Errors.Select(e => e.Description).ToList());
    }

    public async Task SendVerificationAsync(MachiUser user, Uri baseAddress, string lang, CancellationToken cancellationToken)
    {
        var token = await users.GenerateEmailConfirmationTokenAsync(user).ConfigureAwait(false);
        var link = Link(baseAddress, "account/verify-email", user.Id, token);
        var (subject, body) = lang == "en"
            ? ("Machi: confirm your e-mail address", $"Open this link to confirm your address and finish signing up:\n\n{link}\n\nIf you did not sign up for Machi, ignore this message.")
            : ("Machi: メールアドレスの確認", $"次のリンクを開いてメールアドレスを確認し、登録を完了してください。\n\n{link}\n\n心当たりがない場合はこのメールを破棄してください。");
        await mail.SendAsync(new MailMessage(user.Email!, subject, body), cancellationToken).ConfigureAwait(false);
    }

    public async Task SendPasswordResetAsync(MachiUser user, Uri baseAddress, string lang, CancellationToken cancellationToken)
    {
        var token = await users.GeneratePasswordResetTokenAsync(user).ConfigureAwait(false);
        var link = Link(baseAddress, "account/reset-password", user.Id, token);
        var (subject, body) = lang == "en"
            ? ("Machi: reset your password", $"Open this link to choose a new password:\n\n{link}\n\nIf you did not ask for this, ignore this message; your password stays as it is.")
            : ("Machi: パスワードの再設定", $"次のリンクを開いて新しいパスワードを設定してください。\n\n{link}\n\n心当たりがない場合はこのメールを破棄してください（パスワードは変わりません）。");
        await mail.SendAsync(new MailMessage(user.Email!, subject, body), cancellationToken).ConfigureAwait(false);
    }

    private static string Link(Uri baseAddress, string path, string userId, string token) =>
        QueryHelpers.AddQueryString(new Uri(baseAddress, path).AbsoluteUri, new Dictionary<string, string?>
        {
            ["user"] = userId,
            ["token"] = WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes(token)),
        });
}
