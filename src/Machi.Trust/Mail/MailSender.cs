using System.Globalization;
using System.Text;
using Microsoft.Extensions.Options;

namespace Machi.Trust.Mail;

/// <summary>A message to one person: plain text, UTF-8.</summary>
public sealed record MailMessage(string To, string Subject, string Body);

/// <summary>Sends account mail (verification, password reset). Production deployments plug in SMTP or an API here.</summary>
public interface IMailSender
{
    Task SendAsync(MailMessage message, CancellationToken cancellationToken);
}

/// <summary>
/// Development and air-gapped sender: each message becomes an RFC 5322 .eml file in DATA/mail-outbox, which any mail
/// client opens and tests read.
/// </summary>
internal sealed class OutboxMailSender(IOptions<TrustOptions> options, TimeProvider time) : IMailSender
{
    public string Directory => Path.Combine(options.Value.DataDirectory, options.Value.MailOutbox);

    public async Task SendAsync(MailMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        System.IO.Directory.CreateDirectory(Directory);
        var now = time.GetUtcNow();
        var text = new StringBuilder()
            .Append("From: ").Append(options.Value.MailFrom).Append("\r\n")
            .Append("To: ").Append(message.To).Append("\r\n")
            .Append("Subject: ").Append(EncodedWord(message.Subject)).Append("\r\n")
            .Append("Date: ").Append(now.ToString("r", CultureInfo.InvariantCulture)).Append("\r\n")
            .Append("Message-ID: <").Append(Guid.NewGuid().ToString("N")).Append("@machi.localhost>\r\n")
            .Append("MIME-Version: 1.0\r\n")
            .Append("Content-Type: text/plain; charset=utf-8\r\n")
            .Append("Content-Transfer-Encoding: 8bit\r\n")
            .Append("\r\n")
            .Append(message.Body.ReplaceLineEndings("\r\n"))
            .Append("\r\n");
        var name = $"{now:yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}.eml";
        var temporary = Path.Combine(Directory, name + ".tmp");
        await File.WriteAllTextAsync(temporary, text.ToString(), new UTF8Encoding(false), cancellationToken).ConfigureAwait(false);

        // A reader never sees half a message.
        File.Move(temporary, Path.Combine(Directory, name));
    }

    private static string EncodedWord(string text) =>
        text.All(c => c is >= ' ' and <= '~') ? text : $"=?utf-8?B?{Convert.ToBase64String(Encoding.UTF8.GetBytes(text))}?=";
}
