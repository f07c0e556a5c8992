using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Host;

/// <summary>The data directory holds residents' personal data: machi creates it for its own account alone.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class DataDirectoryTests
{
    private const UnixFileMode GroupAndOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    [Fact]
    public async Task A_new_data_directory_is_for_its_owner_alone_and_an_open_one_is_warned_about()
    {
        var root = TempDirectory.Create("machi-private-");
        try
        {
            // Created by serve (missing parents too), and by a command that works on the data.
            var served = Path.Combine(root, "city", "data");
            await using (await MachiProcess.StartAsync(dataDirectory: served))
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(served));
            }

            var administered = Path.Combine(root, "admin");
            var added = await MachiProcess.RunAsync(["user", "add", "--data", administered, "--role", "staff", "--email", "a@example.jp", "--password", "correct horse"]);
            Assert.True(added.ExitCode == 0, added.ToString());
            Assert.Equal((UnixFileMode)0, File.GetUnixFileMode(administered) & GroupAndOthers);

            // One the operator made readable by others is kept as it is, with a warning that says what to do.
            var open = Path.Combine(root, "open");
            Directory.CreateDirectory(open);
            File.SetUnixFileMode(open, (UnixFileMode)Convert.ToInt32("755", 8));
            await using var machi = await MachiProcess.StartAsync(dataDirectory: open);
            Assert.Contains($"The data directory {open} can be opened by other users (mode 755)", machi.Output, StringComparison.Ordinal);
            Assert.Contains("chmod 700", machi.Output, StringComparison.Ordinal);
        }
        finally
        {
            TempDirectory.Delete(root);
        }
    }
}
