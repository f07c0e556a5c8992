using System.Globalization;
using System.Net;

namespace Machi.Portal.Tests;

/// <summary>Online procedures over HTTP: validation, attachments, storage, the status workflow and notifications.</summary>
public sealed class ProcedureTests(PortalServer portal) : IClassFixture<PortalServer>
{
    private static string InDays(int days) =>
        DateTimeOffset.UtcNow.ToOffset(TimeSpan.FromHours(9)).AddDays(days).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static List<KeyValuePair<string, string>> GoodSodaiGomi() =>
    [
        new("name", "会津 太郎"), new("phone", "0242-39-1234"), new("district", "一箕町大字八幡"), new("address", "1-2-3"),
        new("items", "たんす 1点、自転車 1台"), new("count", "2"), new("date", InDays(10)), new("place", "entrance"), new("ticket", "yes"),
    ];

    private static List<KeyValuePair<string, string>> GoodJuminhyo() =>
    [
        new("name", "会津 花子"), new("birth_date", "1980-04-01"), new("district", "北会津町古舘"), new("address", "100"),
        new("scope", "self"), new("copies", "1"), new("purpose", "employment"), new("delivery", "counter"), new("phone", "0242391234"),
    ];

    private static int StoredFiles(string directory) => Directory.Exists(directory) ? Directory.GetFiles(directory).Length : 0;

    [Fact]
    public async Task Bad_field_values_are_each_explained_next_to_their_field_and_nothing_is_stored()
    {
        using var resident = await portal.ResidentAsync();
        var before = StoredFiles(portal.AttachmentDirectory);
        var fields = GoodSodaiGomi()
            .Where(f => f.Key is not ("count" or "phone" or "date" or "district" or "ticket" or "name"))
            .Concat([new("count", "50"), new("phone", "電話して"), new("date", InDays(1)), new("district", "東京都千代田区")])
            .ToList();

        var (status, html, _) = await resident.PostMultipartAsync("/portal/procedures/sodai-gomi", "/portal/procedures/sodai-gomi", fields,
            [("photo", "photo.png", "image/png", Files.Png)]);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("data-error=\"invalid\"", html, StringComparison.Ordinal);
        Assert.Contains("data-field-error=\"name\"", html, StringComparison.Ordinal);
        Assert.Contains("1–10 の範囲で入力してください", html, StringComparison.Ordinal);
        Assert.Contains("data-field-error=\"phone\"", html, StringComparison.Ordinal);
        Assert.Contains($"{InDays(7)} 以降の日付を入力してください", html, StringComparison.Ordinal);
        Assert.Contains("data-field-error=\"district\"", html, StringComparison.Ordinal);
        Assert.Contains("data-field-error=\"ticket\"", html, StringComparison.Ordinal);
        Assert.Contains("aria-invalid=\"true\"", html, StringComparison.Ordinal);
        // What the resident typed stays in the form.
        Assert.Contains("value=\"50\"", html, StringComparison.Ordinal);
        Assert.Equal(before, StoredFiles(portal.AttachmentDirectory));
        var (_, mine, _) = await resident.GetAsync("/portal/applications");
        Assert.DoesNotContain("data-application=", mine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_that_is_not_a_PDF_JPEG_or_PNG_is_refused_whatever_its_name_and_type_say()
    {
        using var resident = await portal.ResidentAsync();
        var before = StoredFiles(portal.AttachmentDirectory);

        var (status, html, _) = await resident.PostMultipartAsync("/portal/procedures/juminhyo?lang=en", "/portal/procedures/juminhyo", GoodJuminhyo(),
            [("id_document", "card.png", "image/png", "<html><script>alert(1)</script></html>"u8.ToArray())]);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("This kind of file cannot be attached. Attach a PDF, JPEG, PNG file.", html, StringComparison.Ordinal);
        Assert.Equal(before, StoredFiles(portal.AttachmentDirectory));
    }

    [Fact]
    public async Task A_missing_required_attachment_is_asked_for()
    {
        using var resident = await portal.ResidentAsync();

        var (status, html, _) = await resident.PostMultipartAsync("/portal/procedures/juminhyo", "/portal/procedures/juminhyo", GoodJuminhyo(), []);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("ファイルを添付してください。", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_attachment_over_10_MB_is_refused_with_the_limit_and_nothing_is_kept()
    {
        using var resident = await portal.ResidentAsync();
        var before = StoredFiles(portal.AttachmentDirectory);

        var (status, html, _) = await resident.PostMultipartAsync("/portal/procedures/juminhyo", "/portal/procedures/juminhyo", GoodJuminhyo(),
            [("id_document", "scan.png", "image/png", Files.PngOfSize((10 * 1024 * 1024) + 1))]);
        var (largerStatus, largerHtml, _) = await resident.PostMultipartAsync("/portal/procedures/juminhyo?lang=en", "/portal/procedures/juminhyo", GoodJuminhyo(),
            [("id_document", "scan.png", "image/png", Files.PngOfSize(15 * 1024 * 1024))]);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("ファイルが大きすぎます。10 MB以下のファイルを添付してください。", html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, largerStatus);
        Assert.Contains("The file is too large. Attach a file of 10 MB or less.", largerHtml, StringComparison.Ordinal);
        Assert.Equal(before, StoredFiles(portal.AttachmentDirectory));
        var (_, mine, _) = await resident.GetAsync("/portal/applications");
        Assert.DoesNotContain("data-application=", mine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_form_without_its_antiforgery_token_is_refused()
    {
        using var resident = await portal.ResidentAsync();

        var (status, html, _) = await resident.PostWithoutTokenAsync("/portal/procedures/sodai-gomi", GoodSodaiGomi());

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("data-error=\"form_expired\"", html, StringComparison.Ordinal);
        var (_, mine, _) = await resident.GetAsync("/portal/applications");
        Assert.DoesNotContain("data-application=", mine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Staff_work_an_application_and_the_resident_follows_each_change_with_a_notification_and_a_mail()
    {
        using var resident = await portal.ResidentAsync();
        using var other = await portal.ResidentAsync();
        using var staff = await portal.StaffAsync();

        var (status, _, location) = await resident.PostMultipartAsync("/portal/procedures/juminhyo", "/portal/procedures/juminhyo", GoodJuminhyo(),
            [("id_document", "マイナンバーカード.pdf", "application/pdf", Files.Pdf)]);
        Assert.Equal(HttpStatusCode.Redirect, status);
        var application = location!.OriginalString.Split('?')[0];
        var id = application.Split('/')[^1];
        var (_, page, _) = await resident.GetAsync(application);
        Assert.Contains("data-status=\"submitted\"", page, StringComparison.Ordinal);
        Assert.Contains("マイナンバーカード.pdf", page, StringComparison.Ordinal);

        // Another resident cannot see it or its file.
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync(application)).Status);
        var attachment = System.Text.RegularExpressions.Regex.Match(page, "/portal/attachments/([0-9a-f]{32})").Value;
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync(attachment)).Status);

        // Staff see it in the queue and move it on.
        var (_, queue, _) = await staff.GetAsync("/portal/staff/queue");
        Assert.Contains($"data-queue-item=\"{id}\"", queue, StringComparison.Ordinal);
        var staffPage = $"/portal/staff/applications/{id}";
        var (reviewStatus, _, _) = await staff.PostFormAsync(staffPage, staffPage + "/status", [new("status", "in_review"), new("expected", "submitted"), new("comment", "")]);
        Assert.Equal(HttpStatusCode.Redirect, reviewStatus);
        var (noComment, noCommentHtml, _) = await staff.PostFormAsync(staffPage, staffPage + "/status", [new("status", "returned"), new("expected", "in_review"), new("comment", "")]);
        Assert.Equal(HttpStatusCode.BadRequest, noComment);
        Assert.Contains("data-error=\"error_comment_required\"", noCommentHtml, StringComparison.Ordinal);
        var (stale, _, _) = await staff.PostFormAsync(staffPage, staffPage + "/status", [new("status", "completed"), new("expected", "submitted"), new("comment", "")]);
        Assert.Equal(HttpStatusCode.BadRequest, stale);
        var (returned, _, _) = await staff.PostFormAsync(staffPage, staffPage + "/status",
            [new("status", "returned"), new("expected", "in_review"), new("comment", "本人確認書類の裏面も添付してください。")]);
        Assert.Equal(HttpStatusCode.Redirect, returned);

        // The resident sees the new status, the comment, and two notifications (unread until opened).
        (_, page, _) = await resident.GetAsync(application);
        Assert.Contains("data-status=\"returned\"", page, StringComparison.Ordinal);
        Assert.Contains("本人確認書類の裏面も添付してください。", page, StringComparison.Ordinal);
        Assert.Contains("data-unread=\"2\"", page, StringComparison.Ordinal);
        var (_, notifications, _) = await resident.GetAsync("/portal/notifications");
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(notifications, $"data-notification=\"{id}\""));
        (_, page, _) = await resident.GetAsync(application);
        Assert.DoesNotContain("data-unread=", page, StringComparison.Ordinal);

        // And a mail per change in Trust's outbox.
        var outbox = Path.Combine(portal.Server.DataDirectory, "mail-outbox");
        var mails = Directory.GetFiles(outbox, "*.eml").Select(File.ReadAllText).Where(m => m.Contains($"申請番号 {id} ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, mails.Count);
        Assert.Contains(mails, m => m.Contains("本人確認書類の裏面も添付してください。", StringComparison.Ordinal));

        // Staff download the attachment: always as a download, under Machi's name, with the sniffed type.
        var (fileStatus, fileBody, _) = await staff.GetAsync(attachment);
        Assert.Equal(HttpStatusCode.OK, fileStatus);
        Assert.StartsWith("%PDF-", fileBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_acknowledged_application_and_its_file_survive_a_restart()
    {
        var data = TempDirectory.Create("machi-portal-durable-");
        try
        {
            string application;
            await using (var first = await MachiServer.StartAsync(data))
            {
                await PortalClient.AddUserAsync(data, "resident", "durable@aizu.example");
                using var resident = new PortalClient(first.BaseAddress);
                await resident.SignInAsync("durable@aizu.example");
                var (status, _, location) = await resident.PostMultipartAsync("/portal/procedures/sodai-gomi", "/portal/procedures/sodai-gomi", GoodSodaiGomi(),
                    [("photo", "sofa.png", "image/png", Files.Png)]);
                Assert.Equal(HttpStatusCode.Redirect, status);
                application = location!.OriginalString.Split('?')[0];
            }

            await using var second = await MachiServer.StartAsync(data);
            using var again = new PortalClient(second.BaseAddress);
            await again.SignInAsync("durable@aizu.example");
            var (pageStatus, page, _) = await again.GetAsync(application);
            Assert.Equal(HttpStatusCode.OK, pageStatus);
            Assert.Contains("たんす 1点、自転車 1台", page, StringComparison.Ordinal);
            var attachment = System.Text.RegularExpressions.Regex.Match(page, "/portal/attachments/([0-9a-f]{32})").Value;
            var (fileStatus, _, _) = await again.GetAsync(attachment);
            Assert.Equal(HttpStatusCode.OK, fileStatus);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task An_acknowledged_application_survives_kill_9_of_the_server_process()
    {
        var data = TempDirectory.Create("machi-portal-kill-");
        try
        {
            string application;
            await using (var process = await MachiProcess.StartAsync(data))
            {
                await PortalClient.AddUserAsync(data, "resident", "kill9@aizu.example");
                using var resident = new PortalClient(process.BaseAddress);
                await resident.SignInAsync("kill9@aizu.example");
                var (status, _, location) = await resident.PostMultipartAsync("/portal/procedures/juminhyo", "/portal/procedures/juminhyo", GoodJuminhyo(),
                    [("id_document", "license.jpg", "image/jpeg", [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4])]);
                Assert.Equal(HttpStatusCode.Redirect, status);
                application = location!.OriginalString.Split('?')[0];

                // No warning, no shutdown: the acknowledgement is all the resident had.
                process.Kill();
            }

            await using var after = await MachiServer.StartAsync(data);
            using var again = new PortalClient(after.BaseAddress);
            await again.SignInAsync("kill9@aizu.example");
            var (pageStatus, page, _) = await again.GetAsync(application);
            Assert.Equal(HttpStatusCode.OK, pageStatus);
            Assert.Contains("data-status=\"submitted\"", page, StringComparison.Ordinal);
            Assert.Contains("license.jpg", page, StringComparison.Ordinal);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task Anonymous_people_can_read_a_procedure_but_are_sent_to_sign_in_to_apply()
    {
        using var anonymous = new PortalClient(portal.Server.BaseAddress);

        var (status, html, _) = await anonymous.GetAsync("/portal/procedures/sodai-gomi");
        var (_, mine, location) = await anonymous.GetAsync("/portal/applications");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("粗大ごみ収集申込", html, StringComparison.Ordinal);
        Assert.Contains("/account/login?ReturnUrl=%2Fportal%2Fprocedures%2Fsodai-gomi", html, StringComparison.Ordinal);
        Assert.StartsWith("/account/login", location!.OriginalString, StringComparison.Ordinal);
        _ = mine;
    }
}
