namespace Machi.Portal;

/// <summary>The portal's settings (section <c>Portal</c>).</summary>
public sealed class PortalOptions
{
    /// <summary>Largest attachment accepted, in bytes (default 10 MB).</summary>
    public long MaxAttachmentBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Seed demo notices on first run (the two example procedures are always seeded).</summary>
    public bool SeedDemoData { get; set; } = true;

    /// <summary>E-mail residents when an application's status changes (through Trust's mail sender).</summary>
    public bool MailStatusChanges { get; set; } = true;

    /// <summary>
    /// How often a node looks for alerts issued or cancelled on another node sharing the database, while some page is
    /// listening; alerts issued on this node are pushed at once.
    /// </summary>
    public TimeSpan AlertPollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Set from Broker:DataDirectory; the database and attachments live there.</summary>
    public string DataDirectory { get; set; } = "";

    public string AttachmentDirectory => Path.Combine(DataDirectory, "attachments");
}
