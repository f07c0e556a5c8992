namespace Machi.Portal.Storage;

/// <summary>
/// The portal's own data: profiles, notices, alerts, procedures, applications with their history and attachments, and
/// notifications. SQLite (<see cref="SqlitePortalStore"/>) is the embedded default; a PostgreSQL store implements the
/// same contract.
/// </summary>
internal interface IPortalStore
{
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>True the first time <paramref name="key"/> is claimed on this database (one-time work such as demo data).</summary>
    Task<bool> ClaimOnceAsync(string key, DateTimeOffset at, CancellationToken cancellationToken);

    Task<Profile?> GetProfileAsync(string userId, CancellationToken cancellationToken);

    Task SaveProfileAsync(Profile profile, CancellationToken cancellationToken);

    Task DeleteProfileAsync(string userId, CancellationToken cancellationToken);

    Task<long> AddNoticeAsync(Notice notice, CancellationToken cancellationToken);

    /// <summary>Notices published at <paramref name="now"/> and not expired, newest first.</summary>
    Task<IReadOnlyList<Notice>> PublishedNoticesAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Every notice, scheduled and expired too, newest first (for staff).</summary>
    Task<IReadOnlyList<Notice>> AllNoticesAsync(CancellationToken cancellationToken);

    Task<Notice?> GetNoticeAsync(long id, CancellationToken cancellationToken);

    Task DeleteNoticeAsync(long id, CancellationToken cancellationToken);

    Task<long> AddAlertAsync(Alert alert, CancellationToken cancellationToken);

    Task<bool> CancelAlertAsync(long id, DateTimeOffset at, CancellationToken cancellationToken);

    Task<IReadOnlyList<Alert>> ActiveAlertsAsync(CancellationToken cancellationToken);

    /// <summary>A value that changes whenever an alert is issued or cancelled (by any node sharing the database).</summary>
    Task<string> AlertsVersionAsync(CancellationToken cancellationToken);

    Task<IReadOnlyList<Alert>> RecentAlertsAsync(int limit, CancellationToken cancellationToken);

    Task<IReadOnlyList<StoredProcedure>> ProceduresAsync(bool activeOnly, CancellationToken cancellationToken);

    Task<StoredProcedure?> GetProcedureAsync(string code, CancellationToken cancellationToken);

    /// <summary>Adds or replaces a procedure's definition.</summary>
    Task SaveProcedureAsync(StoredProcedure procedure, CancellationToken cancellationToken);

    /// <summary>
    /// Stores an application, its attachments' metadata and its first status in one transaction; the attachment files
    /// must already be on disk. Returns the application's number.
    /// </summary>
    Task<long> AddSubmissionAsync(Submission submission, IReadOnlyList<Attachment> attachments, CancellationToken cancellationToken);

    Task<Submission?> GetSubmissionAsync(long id, CancellationToken cancellationToken);

    Task<IReadOnlyList<Submission>> SubmissionsOfAsync(string userId, CancellationToken cancellationToken);

    /// <summary>Applications in the given statuses (all when empty), oldest first: the staff queue.</summary>
    Task<IReadOnlyList<Submission>> QueueAsync(IReadOnlyList<string> statuses, CancellationToken cancellationToken);

    Task<IReadOnlyList<StatusChange>> HistoryAsync(long submissionId, CancellationToken cancellationToken);

    Task<IReadOnlyList<Attachment>> AttachmentsAsync(long submissionId, CancellationToken cancellationToken);

    Task<Attachment?> GetAttachmentAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// Moves an application from <paramref name="expected"/> to <paramref name="change"/>'s status, records the history
    /// and a notification for its owner, all at once; false when it was no longer in <paramref name="expected"/>.
    /// </summary>
    Task<bool> ChangeStatusAsync(StatusChange change, string expected, CancellationToken cancellationToken);

    Task<IReadOnlyList<Notification>> NotificationsAsync(string userId, CancellationToken cancellationToken);

    Task<int> UnreadNotificationsAsync(string userId, CancellationToken cancellationToken);

    Task MarkNotificationsReadAsync(string userId, DateTimeOffset at, CancellationToken cancellationToken);
}
