using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Machi.Bench.Server;

/// <summary>
/// The broker under test: either one already running (--url), or the Release build launched here on a free
/// loopback port with a temporary data directory, both removed again on dispose. Its output goes to a log file,
/// kept (and named to the user) when something went wrong.
/// </summary>
internal sealed class BrokerServer : IAsyncDisposable
{
    /// <summary>The runtime's minimum young-generation size, an environment variable only.</summary>
    private const string Gen0SizeVariable = "DOTNET_GCgen0size";

    /// <summary>What the <c>machi</c> launcher sets it to when it is not set (64 MB).</summary>
    private const string LauncherGen0Size = "0x4000000";

    private readonly Process? _process;
    private StreamWriter? _log;
    private readonly Lock _logLock = new();
    private bool _keepLog;

    private BrokerServer(Uri baseUri, int? processId, Process? process, string? dll, string? dataDirectory, string? logPath, StreamWriter? log)
    {
        BaseUri = baseUri;
        ProcessId = processId;
        _process = process;
        Dll = dll;
        DataDirectory = dataDirectory;
        LogPath = logPath;
        _log = log;
    }

    public Uri BaseUri { get; }

    public bool Launched => _process is not null;

    /// <summary>The server's process id, when known (launched here, or given with --server-pid).</summary>
    public int? ProcessId { get; private set; }

    public string? Dll { get; }

    public string? DataDirectory { get; }

    public string? LogPath { get; }

    public static BrokerServer External(Uri baseUri, int? processId) =>
        new(baseUri, processId, null, null, null, null, null);

    /// <param name="prepare">Called with the new data directory before the broker starts (to write what it should
    /// find there at start-up).</param>
    /// <param name="database">A PostgreSQL connection string: the broker runs on it (<c>--database</c>) instead of SQLite.</param>
    public static async Task<BrokerServer> LaunchAsync(string dll, string workingDirectory, TimeSpan startupTimeout, CancellationToken cancellationToken,
        Func<string, CancellationToken, Task>? prepare = null, string? database = null)
    {
        if (!File.Exists(dll))
        {
            throw new BenchFailure(
                $"no broker build at {dll}. Build it with `dotnet build -c Release src/Machi.Host`, "
                + "or point the bench at a running broker with --url http://127.0.0.1:PORT (or at another build with --server-dll).");
        }

        var baseUri = LoopbackAddress();
        string dataDirectory = Directory.CreateTempSubdirectory("machi-bench-data-").FullName;
        if (prepare is not null)
        {
            try
            {
                await prepare(dataDirectory, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                Directory.Delete(dataDirectory, recursive: true);
                throw;
            }
        }

        string[] storage = database is null ? [] : ["--database", database];
        var start = DotnetStart([dll, "serve", "--urls", baseUri.AbsoluteUri.TrimEnd('/'), "--data", dataDirectory, .. storage]);
        start.WorkingDirectory = workingDirectory;
        var server = await StartAsync(start, baseUri, dll, dataDirectory, "machi-bench", startupTimeout, cancellationToken).ConfigureAwait(false);
        try
        {
            Scenarios.BrokerTarget.AccessToken = await AdminTokenAsync(dll, dataDirectory, storage, baseUri, cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            server._keepLog = true;
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Launches the HTTP floor (<see cref="HttpFloor"/>): this program again, serving <paramref name="body"/> as every
    /// entity on a free loopback port, in a process of its own and with the broker's collector settings.
    /// </summary>
    public static async Task<BrokerServer> LaunchHttpFloorAsync(byte[] body, TimeSpan startupTimeout, CancellationToken cancellationToken)
    {
        var baseUri = LoopbackAddress();
        string directory = Directory.CreateTempSubdirectory("machi-bench-floor-").FullName;
        string bodyPath = Path.Combine(directory, "entity.json");
        await File.WriteAllBytesAsync(bodyPath, body, cancellationToken).ConfigureAwait(false);
        var start = DotnetStart([typeof(HttpFloor).Assembly.Location, HttpFloor.ServeArgument, baseUri.AbsoluteUri.TrimEnd('/'), bodyPath]);

        // The bench itself runs the server collector; the broker runs the workstation one.
        start.Environment["DOTNET_gcServer"] = "0";
        return await StartAsync(start, baseUri, null, directory, "machi-bench-floor", startupTimeout, cancellationToken).ConfigureAwait(false);
    }

    private static Uri LoopbackAddress() =>
        new(string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{FreeLoopbackPort()}"));

    /// <summary><c>dotnet ARGUMENTS</c>, output redirected, with the young generation's size as ./machi sets it (unless the
    /// bench's own environment says otherwise).</summary>
    private static ProcessStartInfo DotnetStart(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment[Gen0SizeVariable] = Environment.GetEnvironmentVariable(Gen0SizeVariable) ?? LauncherGen0Size;
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    /// <summary>
    /// Starts the process with its output in a log file named after <paramref name="logName"/>, and waits for its /health;
    /// on failure keeps the log, stops the process and removes <paramref name="directory"/>.
    /// </summary>
    private static async Task<BrokerServer> StartAsync(
        ProcessStartInfo start, Uri baseUri, string? dll, string directory, string logName, TimeSpan startupTimeout, CancellationToken cancellationToken)
    {
        string logPath = Path.Combine(
            Path.GetTempPath(), string.Create(CultureInfo.InvariantCulture, $"{logName}-{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-{baseUri.Port}.log"));
        var process = new Process { StartInfo = start };
        var server = new BrokerServer(baseUri, null, process, dll, directory, logPath, new StreamWriter(logPath) { AutoFlush = true });
        process.OutputDataReceived += (_, e) => server.WriteLog(e.Data);
        process.ErrorDataReceived += (_, e) => server.WriteLog(e.Data);
        try
        {
            process.Start();
            server.ProcessId = process.Id;
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await server.WaitUntilHealthyAsync(startupTimeout, cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            server._keepLog = true;
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A token of an admin client registered on the launched broker's data directory (<c>machi client add --admin</c>),
    /// got by client credentials at the token endpoint: the bench calls the API as a real service does.
    /// </summary>
    private static async Task<string> AdminTokenAsync(string dll, string dataDirectory, string[] storage, Uri baseUri, CancellationToken cancellationToken)
    {
        var add = new ProcessStartInfo(DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in (string[])[dll, "client", "add", "--name", "bench", "--admin", "--data", dataDirectory, .. storage])
        {
            add.ArgumentList.Add(argument);
        }

        using var process = Process.Start(add) ?? throw new BenchFailure("could not run machi client add");
        string output = await process.StandardOutput.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new BenchFailure("machi client add failed: " + await process.StandardError.ReadToEndAsync(cancellationToken).ConfigureAwait(false));
        }

        using var credentials = System.Text.Json.JsonDocument.Parse(output);
        using var http = new HttpClient { BaseAddress = baseUri };
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = credentials.RootElement.GetProperty("client_id").GetString()!,
            ["client_secret"] = credentials.RootElement.GetProperty("client_secret").GetString()!,
        });
        using var response = await http.PostAsync(new Uri("/connect/token", UriKind.Relative), form, cancellationToken).ConfigureAwait(false);
        using var token = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        return token.RootElement.GetProperty("access_token").GetString()!;
    }

    /// <summary>Why the server can no longer be measured, or null while it runs.</summary>
    public string? Problem()
    {
        if (_process is not { HasExited: true })
        {
            return null;
        }

        _keepLog = true;
        return string.Create(CultureInfo.InvariantCulture, $"the broker exited with code {_process.ExitCode}; its log: {LogPath}");
    }

    /// <summary>Keeps the server's log after the run and returns where it is (null for a server not launched here).</summary>
    public string? KeepLog()
    {
        _keepLog = true;
        return LogPath;
    }

    public ProcessMemory? ReadMemory() => ProcessId is { } pid ? ProcessMemory.Read(pid) : null;

    public long? DataDirectoryBytes()
    {
        if (DataDirectory is null || !Directory.Exists(DataDirectory))
        {
            return null;
        }

        long total = 0;
        foreach (var file in new DirectoryInfo(DataDirectory).EnumerateFiles("*", SearchOption.AllDirectories))
        {
            total += file.Length;
        }

        return total;
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is null)
        {
            return;
        }

        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
            await Console.Error.WriteLineAsync($"could not stop the broker (pid {ProcessId}): {e.Message}").ConfigureAwait(false);
        }

        _process.Dispose();
        lock (_logLock)
        {
            _log?.Dispose();
            _log = null;
        }

        TryDelete(() => Directory.Delete(DataDirectory!, recursive: true));
        if (!_keepLog && LogPath is not null)
        {
            TryDelete(() => File.Delete(LogPath));
        }
    }

    private async Task WaitUntilHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var health = new Uri(BaseUri, "/health");
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        string lastAnswer = "no answer";
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process!.HasExited)
            {
                throw new BenchFailure(string.Create(
                    CultureInfo.InvariantCulture,
                    $"the broker exited with code {_process.ExitCode} before it was healthy; its log: {LogPath}"));
            }

            try
            {
                using var response = await client.GetAsync(health, cancellationToken).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }

                lastAnswer = "HTTP " + (int)response.StatusCode;
            }
            catch (HttpRequestException e)
            {
                lastAnswer = e.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                lastAnswer = "timed out";
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        throw new BenchFailure(string.Create(
            CultureInfo.InvariantCulture,
            $"the broker was not healthy at {health} after {timeout.TotalSeconds:0} s (last: {lastAnswer}); its log: {LogPath}"));
    }

    private void WriteLog(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_logLock)
        {
            _log?.WriteLine(line);
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    // `dotnet run` and the SDK say which host they run on; elsewhere the one on PATH.
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    private static void TryDelete(Action delete)
    {
        try
        {
            delete();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentNullException)
        {
            // A leftover temp file is not worth failing the run for.
        }
    }
}
