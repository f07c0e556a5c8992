namespace Machi.Broker.Storage;

/// <summary>
/// The data directory holds residents' personal data (accounts, consents, health records, uploaded documents) and the
/// keys that protect sign-ins, so only the account Machi runs as may open it.
/// </summary>
internal static class PrivateDirectory
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private const UnixFileMode GroupAndOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// Creates the directory for its owner alone (mode 700; missing parents as usual); one that exists is left as it is.
    /// Returns its mode when other users have access to it, otherwise null.
    /// </summary>
    public static UnixFileMode? Create(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return null;
        }

        var mode = Directory.CreateDirectory(path, OwnerOnly).UnixFileMode;
        return (mode & GroupAndOthers) == 0 ? null : mode;
    }

    /// <summary>A mode as chmod writes it (755).</summary>
    public static string Octal(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8);
}
