namespace Machi.Portal.Storage;

/// <summary>Text in both of the portal's languages; English falls back to Japanese when a writer left it empty.</summary>
internal sealed record Bilingual(string Ja, string En)
{
    public string In(string lang) => lang == "en" && !string.IsNullOrWhiteSpace(En) ? En : Ja;
}

/// <summary>
/// Who a notice or a resident is, for targeting. For a notice each empty list means "anyone"; for a resident an empty
/// value means "not told".
/// </summary>
internal sealed record Audience(
    IReadOnlyList<string> Districts,
    IReadOnlyList<string> AgeGroups,
    IReadOnlyList<string> Household,
    IReadOnlyList<string> Interests)
{
    public static Audience Everyone { get; } = new([], [], [], []);

    public bool IsEveryone => Districts.Count == 0 && AgeGroups.Count == 0 && Household.Count == 0 && Interests.Count == 0;
}

/// <summary>The attributes a resident chose to tell the portal (opt-in; absent until they save one).</summary>
internal sealed record Profile(string UserId, string? District, string? AgeGroup, IReadOnlyList<string> Household, IReadOnlyList<string> Interests, DateTimeOffset UpdatedAt)
{
    public Audience AsAudience() =>
        new(District is null ? [] : [District], AgeGroup is null ? [] : [AgeGroup], Household, Interests);
}

/// <summary>A city notice (お知らせ), published from <see cref="PublishAt"/> until <see cref="ExpiresAt"/>.</summary>
internal sealed record Notice(
    long Id, Bilingual Title, Bilingual Body, string Category, Audience Audience,
    DateTimeOffset PublishAt, DateTimeOffset? ExpiresAt, string CreatedBy, DateTimeOffset CreatedAt);

/// <summary>An emergency alert (e.g. 避難指示) for some districts, shown to everyone until staff cancel it.</summary>
internal sealed record Alert(
    long Id, string Level, Bilingual Title, Bilingual Body, IReadOnlyList<string> Districts,
    DateTimeOffset IssuedAt, string IssuedBy, DateTimeOffset? CancelledAt);

/// <summary>A procedure's stored definition: its code and the JSON staff wrote (see <c>ProcedureDefinition</c>).</summary>
internal sealed record StoredProcedure(string Code, string Definition, bool Active, DateTimeOffset UpdatedAt);

/// <summary>An application (申請) a resident submitted for a procedure.</summary>
internal sealed record Submission(
    long Id, string ProcedureCode, string UserId, string UserEmail, IReadOnlyDictionary<string, string> Values,
    string Status, DateTimeOffset SubmittedAt, DateTimeOffset UpdatedAt);

/// <summary>One change of an application's status, with the comment staff gave.</summary>
internal sealed record StatusChange(long SubmissionId, string Status, string? Comment, string Actor, DateTimeOffset At);

/// <summary>An attached file's metadata; the bytes live under DATA/attachments/<see cref="StoredName"/>.</summary>
internal sealed record Attachment(
    string Id, long SubmissionId, string Field, string OriginalName, string ContentType, long Size, string Sha256, string StoredName);

/// <summary>A message to a resident in the portal (about an application's status).</summary>
internal sealed record Notification(
    long Id, string UserId, long SubmissionId, string Status, string? Comment, DateTimeOffset CreatedAt, DateTimeOffset? ReadAt);

/// <summary>Statuses an application moves through.</summary>
internal static class SubmissionStatus
{
    public const string Submitted = "submitted";
    public const string InReview = "in_review";
    public const string Completed = "completed";
    public const string Returned = "returned";

    public static IReadOnlyList<string> All { get; } = [Submitted, InReview, Completed, Returned];

    /// <summary>Where staff may move an application from <paramref name="from"/>.</summary>
    public static IReadOnlyList<string> Next(string from) => from switch
    {
        Submitted => [InReview, Completed, Returned],
        InReview => [Completed, Returned],
        _ => [],
    };
}
