namespace Machi.Trust.Tests.Infrastructure;

/// <summary>Fresh directories under the system temp directory, and best-effort cleanup.</summary>
public static class TempDirectory
{
    public static string Create(string prefix = "machi-") => Directory.CreateTempSubdirectory(prefix).FullName;

    /// <summary>Deletes the directory tree; a leftover temp directory must never fail a test.</summary>
    public static void Delete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
