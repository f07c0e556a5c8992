namespace Machi.Portal.Tests.Infrastructure;

/// <summary>One Machi host shared by a test class (starting one makes keys, which takes seconds), with a staff account.</summary>
public sealed class PortalServer : IAsyncLifetime
{
    public const string StaffEmail = "kikaku@city.aizu.example";
    private int _next;

    public MachiServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await MachiServer.StartAsync();
        await PortalClient.AddUserAsync(Server.DataDirectory, "staff", StaffEmail);
    }

    /// <summary>A new resident account, signed in.</summary>
    public async Task<PortalClient> ResidentAsync()
    {
        var email = $"resident{Interlocked.Increment(ref _next)}@aizu.example";
        await PortalClient.AddUserAsync(Server.DataDirectory, "resident", email);
        var client = new PortalClient(Server.BaseAddress);
        await client.SignInAsync(email);
        return client;
    }

    public async Task<PortalClient> StaffAsync()
    {
        var client = new PortalClient(Server.BaseAddress);
        await client.SignInAsync(StaffEmail);
        return client;
    }

    public string AttachmentDirectory => Path.Combine(Server.DataDirectory, "attachments");

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Files for uploads.</summary>
public static class Files
{
    /// <summary>A real 1×1 PNG.</summary>
    public static byte[] Png { get; } = Convert.FromBase64String(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==");

    public static byte[] Pdf { get; } = "%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"u8.ToArray();

    /// <summary>A PNG header followed by <paramref name="size"/> bytes in all.</summary>
    public static byte[] PngOfSize(int size)
    {
        var bytes = new byte[size];
        Png.AsSpan(0, 8).CopyTo(bytes);
        return bytes;
    }

    public static string Write(string directory, string name, byte[] bytes)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
