using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Machi.Portal.Storage;

/// <summary>
/// The portal's tables (<c>portal_*</c>) in Machi's SQLite file, WAL mode, synchronous=FULL so an acknowledged
/// application survives a kill -9 or a power cut. Schema changes are numbered migrations, each applied once.
/// </summary>
internal sealed class SqlitePortalStore(string databasePath) : IPortalStore
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder
    {
        DataSource = databasePath,
        Pooling = true,
        DefaultTimeout = 30,
    }.ToString();

    /// <summary>Each entry is applied once, in order, inside a transaction that also records its number.</summary>
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE portal_profiles (
            user_id TEXT PRIMARY KEY, district TEXT, age_group TEXT, household TEXT NOT NULL, interests TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE portal_notices (
            id INTEGER PRIMARY KEY AUTOINCREMENT, title_ja TEXT NOT NULL, title_en TEXT NOT NULL, body_ja TEXT NOT NULL,
            body_en TEXT NOT NULL, category TEXT NOT NULL, audience TEXT NOT NULL, publish_at TEXT NOT NULL, expires_at TEXT,
            created_by TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE INDEX portal_notices_publish ON portal_notices (publish_at);
        CREATE TABLE portal_alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT, level TEXT NOT NULL, title_ja TEXT NOT NULL, title_en TEXT NOT NULL,
            body_ja TEXT NOT NULL, body_en TEXT NOT NULL, districts TEXT NOT NULL, issued_at TEXT NOT NULL,
            issued_by TEXT NOT NULL, cancelled_at TEXT);
        CREATE TABLE portal_procedures (
            code TEXT PRIMARY KEY, definition TEXT NOT NULL, active INTEGER NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE portal_submissions (
            id INTEGER PRIMARY KEY AUTOINCREMENT, procedure_code TEXT NOT NULL REFERENCES portal_procedures (code),
            user_id TEXT NOT NULL, user_email TEXT NOT NULL, field_values TEXT NOT NULL, status TEXT NOT NULL,
            submitted_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE INDEX portal_submissions_user ON portal_submissions (user_id, id);
        CREATE INDEX portal_submissions_status ON portal_submissions (status, id);
        CREATE TABLE portal_status_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT, submission_id INTEGER NOT NULL REFERENCES portal_submissions (id),
            status TEXT NOT NULL, comment TEXT, actor TEXT NOT NULL, at TEXT NOT NULL);
        CREATE INDEX portal_status_history_submission ON portal_status_history (submission_id, id);
        CREATE TABLE portal_attachments (
            id TEXT PRIMARY KEY, submission_id INTEGER NOT NULL REFERENCES portal_submissions (id), field TEXT NOT NULL,
            original_name TEXT NOT NULL, content_type TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            stored_name TEXT NOT NULL);
        CREATE INDEX portal_attachments_submission ON portal_attachments (submission_id);
        CREATE TABLE portal_notifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, submission_id INTEGER NOT NULL,
            status TEXT NOT NULL, comment TEXT, created_at TEXT NOT NULL, read_at TEXT);
        CREATE INDEX portal_notifications_user ON portal_notifications (user_id, id);
        CREATE TABLE portal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    ];

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(databasePath))!);
        await using var connection = await OpenAsync(cancellationToken);
        await ExecuteAsync(connection, "PRAGMA journal_mode=WAL;", cancellationToken);
        await ExecuteAsync(connection,
            "CREATE TABLE IF NOT EXISTS portal_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);", cancellationToken);
        for (var version = 1; version <= Migrations.Length; version++)
        {
            // BEGIN IMMEDIATE: two nodes starting together serialise here, and the second sees the first's row.
            await using var transaction = connection.BeginTransaction(deferred: false);
            await using var check = Command(connection, "SELECT COUNT(*) FROM portal_migrations WHERE version = $v", ("$v", version));
            check.Transaction = transaction;
            if (Convert.ToInt64(await check.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) > 0)
            {
                continue;
            }

            await using (var apply = Command(connection, Migrations[version - 1]))
            {
                apply.Transaction = transaction;
                await apply.ExecuteNonQueryAsync(cancellationToken);
            }

            await using (var record = Command(connection, "INSERT INTO portal_migrations (version, applied_at) VALUES ($v, $t)",
                ("$v", version), ("$t", Time(DateTimeOffset.UtcNow))))
            {
                record.Transaction = transaction;
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }
    }

    public async Task<bool> ClaimOnceAsync(string key, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, "INSERT INTO portal_meta (key, value) VALUES ($k, $v) ON CONFLICT (key) DO NOTHING",
            ("$k", key), ("$v", Time(at)));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<Profile?> GetProfileAsync(string userId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            "SELECT district, age_group, household, interests, updated_at FROM portal_profiles WHERE user_id = $u", ("$u", userId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new Profile(userId, NullableString(reader, 0), NullableString(reader, 1), List(reader.GetString(2)), List(reader.GetString(3)), ParseTime(reader.GetString(4)))
            : null;
    }

    public async Task SaveProfileAsync(Profile profile, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            """
            INSERT INTO portal_profiles (user_id, district, age_group, household, interests, updated_at) VALUES ($u, $d, $a, $h, $i, $t)
            ON CONFLICT (user_id) DO UPDATE SET district = $d, age_group = $a, household = $h, interests = $i, updated_at = $t
            """,
            ("$u", profile.UserId), ("$d", profile.District), ("$a", profile.AgeGroup), ("$h", Json(profile.Household)),
            ("$i", Json(profile.Interests)), ("$t", Time(profile.UpdatedAt)));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task DeleteProfileAsync(string userId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, "DELETE FROM portal_profiles WHERE user_id = $u", ("$u", userId));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<long> AddNoticeAsync(Notice notice, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            """
            INSERT INTO portal_notices (title_ja, title_en, body_ja, body_en, category, audience, publish_at, expires_at, created_by, created_at)
            VALUES ($tj, $te, $bj, $be, $c, $a, $p, $x, $by, $at) RETURNING id
            """,
            ("$tj", notice.Title.Ja), ("$te", notice.Title.En), ("$bj", notice.Body.Ja), ("$be", notice.Body.En), ("$c", notice.Category),
            ("$a", JsonSerializer.Serialize(notice.Audience)), ("$p", Time(notice.PublishAt)), ("$x", notice.ExpiresAt is { } x ? Time(x) : null),
            ("$by", notice.CreatedBy), ("$at", Time(notice.CreatedAt)));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    private const string NoticeColumns =
        "id, title_ja, title_en, body_ja, body_en, category, audience, publish_at, expires_at, created_by, created_at";

    public Task<IReadOnlyList<Notice>> PublishedNoticesAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NoticeColumns} FROM portal_notices WHERE publish_at <= $n AND (expires_at IS NULL OR expires_at > $n) ORDER BY publish_at DESC, id DESC",
            ReadNotice, cancellationToken, ("$n", Time(now)));

    public Task<IReadOnlyList<Notice>> AllNoticesAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NoticeColumns} FROM portal_notices ORDER BY publish_at DESC, id DESC", ReadNotice, cancellationToken);

    public async Task<Notice?> GetNoticeAsync(long id, CancellationToken cancellationToken) =>
        First(await QueryAsync($"SELECT {NoticeColumns} FROM portal_notices WHERE id = $id", ReadNotice, cancellationToken, ("$id", id)));

    public async Task DeleteNoticeAsync(long id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, "DELETE FROM portal_notices WHERE id = $id", ("$id", id));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static Notice ReadNotice(SqliteDataReader r) => new(
        r.GetInt64(0), new Bilingual(r.GetString(1), r.GetString(2)), new Bilingual(r.GetString(3), r.GetString(4)), r.GetString(5),
        JsonSerializer.Deserialize<Audience>(r.GetString(6)) ?? Audience.Everyone, ParseTime(r.GetString(7)),
        r.IsDBNull(8) ? null : ParseTime(r.GetString(8)), r.GetString(9), ParseTime(r.GetString(10)));

    public async Task<long> AddAlertAsync(Alert alert, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            """
            INSERT INTO portal_alerts (level, title_ja, title_en, body_ja, body_en, districts, issued_at, issued_by)
            VALUES ($l, $tj, $te, $bj, $be, $d, $at, $by) RETURNING id
            """,
            ("$l", alert.Level), ("$tj", alert.Title.Ja), ("$te", alert.Title.En), ("$bj", alert.Body.Ja), ("$be", alert.Body.En),
            ("$d", Json(alert.Districts)), ("$at", Time(alert.IssuedAt)), ("$by", alert.IssuedBy));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    public async Task<bool> CancelAlertAsync(long id, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            "UPDATE portal_alerts SET cancelled_at = $t WHERE id = $id AND cancelled_at IS NULL", ("$t", Time(at)), ("$id", id));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    private const string AlertColumns = "id, level, title_ja, title_en, body_ja, body_en, districts, issued_at, issued_by, cancelled_at";

    public Task<IReadOnlyList<Alert>> ActiveAlertsAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {AlertColumns} FROM portal_alerts WHERE cancelled_at IS NULL ORDER BY id DESC", ReadAlert, cancellationToken);

    public async Task<string> AlertsVersionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            "SELECT COUNT(*) || ':' || COALESCE(MAX(id), 0) || ':' || COUNT(cancelled_at) FROM portal_alerts");
        return Convert.ToString(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) ?? "";
    }

    public Task<IReadOnlyList<Alert>> RecentAlertsAsync(int limit, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {AlertColumns} FROM portal_alerts ORDER BY id DESC LIMIT $n", ReadAlert, cancellationToken, ("$n", limit));

    private static Alert ReadAlert(SqliteDataReader r) => new(
        r.GetInt64(0), r.GetString(1), new Bilingual(r.GetString(2), r.GetString(3)), new Bilingual(r.GetString(4), r.GetString(5)),
        List(r.GetString(6)), ParseTime(r.GetString(7)), r.GetString(8), r.IsDBNull(9) ? null : ParseTime(r.GetString(9)));

    public Task<IReadOnlyList<StoredProcedure>> ProceduresAsync(bool activeOnly, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT code, definition, active, updated_at FROM portal_procedures {(activeOnly ? "WHERE active = 1" : "")} ORDER BY code",
            ReadProcedure, cancellationToken);

    public async Task<StoredProcedure?> GetProcedureAsync(string code, CancellationToken cancellationToken) =>
        First(await QueryAsync("SELECT code, definition, active, updated_at FROM portal_procedures WHERE code = $c", ReadProcedure, cancellationToken, ("$c", code)));

    private static StoredProcedure ReadProcedure(SqliteDataReader r) => new(r.GetString(0), r.GetString(1), r.GetInt64(2) != 0, ParseTime(r.GetString(3)));

    public async Task SaveProcedureAsync(StoredProcedure procedure, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            """
            INSERT INTO portal_procedures (code, definition, active, updated_at) VALUES ($c, $d, $a, $t)
            ON CONFLICT (code) DO UPDATE SET definition = $d, active = $a, updated_at = $t
            """,
            ("$c", procedure.Code), ("$d", procedure.Definition), ("$a", procedure.Active ? 1 : 0), ("$t", Time(procedure.UpdatedAt)));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<long> AddSubmissionAsync(Submission submission, IReadOnlyList<Attachment> attachments, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = connection.BeginTransaction(deferred: false);
        long id;
        await using (var insert = Command(connection,
            """
            INSERT INTO portal_submissions (procedure_code, user_id, user_email, field_values, status, submitted_at, updated_at)
            VALUES ($p, $u, $e, $v, $s, $t, $t) RETURNING id
            """,
            ("$p", submission.ProcedureCode), ("$u", submission.UserId), ("$e", submission.UserEmail),
            ("$v", JsonSerializer.Serialize(submission.Values)), ("$s", submission.Status), ("$t", Time(submission.SubmittedAt))))
        {
            insert.Transaction = transaction;
            id = Convert.ToInt64(await insert.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
        }

        foreach (var a in attachments)
        {
            await using var file = Command(connection,
                """
                INSERT INTO portal_attachments (id, submission_id, field, original_name, content_type, size, sha256, stored_name)
                VALUES ($id, $s, $f, $n, $c, $z, $h, $st)
                """,
                ("$id", a.Id), ("$s", id), ("$f", a.Field), ("$n", a.OriginalName), ("$c", a.ContentType), ("$z", a.Size), ("$h", a.Sha256),
                ("$st", a.StoredName));
            file.Transaction = transaction;
            await file.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var history = Command(connection,
            "INSERT INTO portal_status_history (submission_id, status, comment, actor, at) VALUES ($s, $st, NULL, $a, $t)",
            ("$s", id), ("$st", submission.Status), ("$a", submission.UserEmail), ("$t", Time(submission.SubmittedAt))))
        {
            history.Transaction = transaction;
            await history.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return id;
    }

    private const string SubmissionColumns = "id, procedure_code, user_id, user_email, field_values, status, submitted_at, updated_at";

    public async Task<Submission?> GetSubmissionAsync(long id, CancellationToken cancellationToken) =>
        First(await QueryAsync($"SELECT {SubmissionColumns} FROM portal_submissions WHERE id = $id", ReadSubmission, cancellationToken, ("$id", id)));

    public Task<IReadOnlyList<Submission>> SubmissionsOfAsync(string userId, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {SubmissionColumns} FROM portal_submissions WHERE user_id = $u ORDER BY id DESC", ReadSubmission, cancellationToken, ("$u", userId));

    public Task<IReadOnlyList<Submission>> QueueAsync(IReadOnlyList<string> statuses, CancellationToken cancellationToken)
    {
        if (statuses.Count == 0)
        {
            return QueryAsync($"SELECT {SubmissionColumns} FROM portal_submissions ORDER BY id", ReadSubmission, cancellationToken);
        }

        var names = statuses.Select((_, i) => "$s" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        return QueryAsync($"SELECT {SubmissionColumns} FROM portal_submissions WHERE status IN ({string.Join(", ", names)}) ORDER BY id",
            ReadSubmission, cancellationToken, [.. names.Zip(statuses, (n, s) => (n, (object?)s))]);
    }

    private static Submission ReadSubmission(SqliteDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3),
        JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(4)) ?? [], r.GetString(5), ParseTime(r.GetString(6)), ParseTime(r.GetString(7)));

    public Task<IReadOnlyList<StatusChange>> HistoryAsync(long submissionId, CancellationToken cancellationToken) =>
        QueryAsync("SELECT submission_id, status, comment, actor, at FROM portal_status_history WHERE submission_id = $s ORDER BY id",
            r => new StatusChange(r.GetInt64(0), r.GetString(1), NullableString(r, 2), r.GetString(3), ParseTime(r.GetString(4))),
            cancellationToken, ("$s", submissionId));

    private const string AttachmentColumns = "id, submission_id, field, original_name, content_type, size, sha256, stored_name";

    public Task<IReadOnlyList<Attachment>> AttachmentsAsync(long submissionId, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {AttachmentColumns} FROM portal_attachments WHERE submission_id = $s ORDER BY rowid", ReadAttachment, cancellationToken, ("$s", submissionId));

    public async Task<Attachment?> GetAttachmentAsync(string id, CancellationToken cancellationToken) =>
        First(await QueryAsync($"SELECT {AttachmentColumns} FROM portal_attachments WHERE id = $id", ReadAttachment, cancellationToken, ("$id", id)));

    private static Attachment ReadAttachment(SqliteDataReader r) => new(
        r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetInt64(5), r.GetString(6), r.GetString(7));

    public async Task<bool> ChangeStatusAsync(StatusChange change, string expected, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = connection.BeginTransaction(deferred: false);
        string? userId;
        await using (var update = Command(connection,
            "UPDATE portal_submissions SET status = $s, updated_at = $t WHERE id = $id AND status = $e RETURNING user_id",
            ("$s", change.Status), ("$t", Time(change.At)), ("$id", change.SubmissionId), ("$e", expected)))
        {
            update.Transaction = transaction;
            userId = await update.ExecuteScalarAsync(cancellationToken) as string;
        }

        if (userId is null)
        {
            return false;
        }

        await using (var history = Command(connection,
            "INSERT INTO portal_status_history (submission_id, status, comment, actor, at) VALUES ($s, $st, $c, $a, $t)",
            ("$s", change.SubmissionId), ("$st", change.Status), ("$c", change.Comment), ("$a", change.Actor), ("$t", Time(change.At))))
        {
            history.Transaction = transaction;
            await history.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var notify = Command(connection,
            "INSERT INTO portal_notifications (user_id, submission_id, status, comment, created_at) VALUES ($u, $s, $st, $c, $t)",
            ("$u", userId), ("$s", change.SubmissionId), ("$st", change.Status), ("$c", change.Comment), ("$t", Time(change.At))))
        {
            notify.Transaction = transaction;
            await notify.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public Task<IReadOnlyList<Notification>> NotificationsAsync(string userId, CancellationToken cancellationToken) =>
        QueryAsync("SELECT id, user_id, submission_id, status, comment, created_at, read_at FROM portal_notifications WHERE user_id = $u ORDER BY id DESC LIMIT 100",
            r => new Notification(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), NullableString(r, 4), ParseTime(r.GetString(5)),
                r.IsDBNull(6) ? null : ParseTime(r.GetString(6))),
            cancellationToken, ("$u", userId));

    public async Task<int> UnreadNotificationsAsync(string userId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, "SELECT COUNT(*) FROM portal_notifications WHERE user_id = $u AND read_at IS NULL", ("$u", userId));
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    public async Task MarkNotificationsReadAsync(string userId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection,
            "UPDATE portal_notifications SET read_at = $t WHERE user_id = $u AND read_at IS NULL", ("$t", Time(at)), ("$u", userId));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, "PRAGMA busy_timeout=10000; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", cancellationToken);
        return connection;
    }

    private async Task<IReadOnlyList<T>> QueryAsync<T>(
        string sql, Func<SqliteDataReader, T> read, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    private static T? First<T>(IReadOnlyList<T> rows) where T : class => rows.Count > 0 ? rows[0] : null;

    private static string Json(IReadOnlyList<string> values) => JsonSerializer.Serialize(values);

    private static List<string> List(string json) => JsonSerializer.Deserialize<List<string>>(json) ?? [];

    private static string? NullableString(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    /// <summary>UTC with a fixed width, so text order is time order.</summary>
    internal static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseTime(string text) =>
        DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
}
