namespace Machi.Trust.Pages;

/// <summary>Every string the account pages show, in Japanese (the default) and English.</summary>
internal static class Texts
{
    private static readonly Dictionary<string, (string Ja, string En)> All = new(StringComparer.Ordinal)
    {
        ["site"] = ("まち Machi", "Machi まち"),
        ["switch"] = ("English", "日本語"),
        ["email"] = ("メールアドレス", "E-mail address"),
        ["password"] = ("パスワード", "Password"),
        ["password_new"] = ("新しいパスワード（8文字以上）", "New password (8 characters or more)"),
        ["password_again"] = ("パスワード（確認）", "Password again"),
        ["login_title"] = ("ログイン", "Sign in"),
        ["login_submit"] = ("ログイン", "Sign in"),
        ["signup_link"] = ("はじめての方は新規登録", "New here? Sign up"),
        ["forgot_link"] = ("パスワードを忘れた方", "Forgot your password?"),
        ["login_link"] = ("ログイン画面へ", "Go to sign in"),
        ["signup_title"] = ("新規登録（市民）", "Sign up (residents)"),
        ["signup_submit"] = ("登録する", "Sign up"),
        ["check_mail"] = ("確認メールを送りました。メール内のリンクを開いて登録を完了してください。", "We sent you an e-mail. Open the link in it to finish signing up."),
        ["verified"] = ("メールアドレスを確認しました。ログインできます。", "Your e-mail address is confirmed. You can sign in now."),
        ["verify_title"] = ("メールアドレスの確認", "E-mail confirmation"),
        ["forgot_title"] = ("パスワードの再設定", "Reset your password"),
        ["forgot_submit"] = ("再設定メールを送る", "Send the reset link"),
        ["reset_sent"] = ("登録されているアドレスであれば、再設定用のメールを送りました。", "If an account uses this address, we sent it a reset link."),
        ["reset_title"] = ("新しいパスワードの設定", "Choose a new password"),
        ["reset_submit"] = ("パスワードを変更する", "Change the password"),
        ["password_changed"] = ("パスワードを変更しました。ログインしてください。", "Your password is changed. Please sign in."),
        ["totp_title"] = ("2段階認証", "Two-step verification"),
        ["totp_code"] = ("認証アプリの6桁のコード", "6-digit code from your authenticator app"),
        ["totp_submit"] = ("確認する", "Verify"),
        ["totp_setup_title"] = ("2段階認証の設定", "Set up two-step verification"),
        ["totp_setup_help"] = ("認証アプリ（Google Authenticator など）に次のキーを登録し、表示されたコードを入力してください。", "Add this key to your authenticator app (Google Authenticator or similar), then enter the code it shows."),
        ["totp_key"] = ("キー", "Key"),
        ["totp_enabled"] = ("2段階認証は有効です。", "Two-step verification is on."),
        ["account_title"] = ("アカウント", "Your account"),
        ["role"] = ("区分", "Role"),
        ["totp_setup_link"] = ("2段階認証を設定する", "Set up two-step verification"),
        ["logout_submit"] = ("ログアウト", "Sign out"),
        ["error_invalid_credentials"] = ("メールアドレスまたはパスワードが正しくありません。", "The e-mail address or password is wrong."),
        ["error_locked_out"] = ("ログインの失敗が続いたため、アカウントを一時的にロックしました。しばらくしてからお試しください。", "Too many failed attempts: the account is locked for a while. Please try again later."),
        ["error_email_unconfirmed"] = ("メールアドレスの確認が済んでいません。確認メールのリンクを開いてください。", "Your e-mail address is not confirmed yet. Open the link in the confirmation mail."),
        ["error_password_mismatch"] = ("2つのパスワードが一致しません。", "The two passwords differ."),
        ["error_invalid_link"] = ("リンクが無効か、期限が切れています。", "This link is invalid or has expired."),
        ["error_invalid_code"] = ("コードが正しくありません。", "The code is wrong."),
        ["error_rejected"] = ("登録できませんでした。", "That did not work."),
        ["error_form_expired"] = ("フォームの有効期限が切れました。もう一度お試しください。", "The form expired. Please try again."),
    };

    public static string Get(string key, string lang) =>
        All.TryGetValue(key, out var text) ? (lang == "en" ? text.En : text.Ja) : key;
}
