using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>What a finished <c>machi</c> command printed and returned.</summary>
public sealed record CliResult(int ExitCode, string StandardOutput, string StandardError)
{
    public override string ToString() =>
        $"exit code {ExitCode}\n--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";
}

/// <summary>
/// The built <c>machi.dll</c> run as a real OS process: <c>dotnet machi.dll serve --urls … --data …</c>.
/// For what only a process shows: exit codes, signals (SIGTERM, SIGKILL), logs on stdout, crash recovery.
/// </summary>
public sealed class MachiProcess : IAsyncDisposable
{
    private static readonly TimeSpan DefaultStartupTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan DefaultStopTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly OutputBuffer _stdout;
    private readonly OutputBuffer _stderr;
    private readonly bool _ownsDataDirectory;

    private MachiProcess(Process process, OutputBuffer stdout, OutputBuffer stderr, int port, string dataDirectory, bool ownsDataDirectory)
    {
        _process = process;
        _stdout = stdout;
        _stderr = stderr;
        _ownsDataDirectory = ownsDataDirectory;
        Port = port;
        DataDirectory = dataDirectory;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri BaseAddress { get; }

    /// <summary>A client for <see cref="BaseAddress"/> with an admin client's access token (see <see cref="MachiServer.Client"/>); disposed with this object.</summary>
    public HttpClient Client { get; }

    public int Port { get; }

    /// <summary>The data directory (absolute); temporary ones are deleted on dispose, given ones kept.</summary>
    public string DataDirectory { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The exit code once the process has exited.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>Everything printed on stdout so far (JSON log lines when redirected, which it is).</summary>
    public string StandardOutput => _stdout.ToString();

    public string StandardError => _stderr.ToString();

    /// <summary>Both streams, for assertion messages.</summary>
    public string Output => $"--- stdout ---\n{StandardOutput}\n--- stderr ---\n{StandardError}";

    /// <summary>
    /// Starts <c>machi serve</c> on a free port and waits until <c>/health</c> answers 200. Without
    /// <paramref name="dataDirectory"/> a temporary one is used. <paramref name="environment"/> adds (or, with a
    /// null value, removes) variables such as <c>Machi__Broker__MaxLimit</c>.
    /// </summary>
    /// <summary>The PostgreSQL database a process is told to use (environment or --database), for the CLI that registers its clients.</summary>
    private static string? DatabaseOf(IDictionary<string, string?>? environment, string[] arguments)
    {
        var flag = Array.IndexOf(arguments, "--database");
        return flag >= 0 && flag + 1 < arguments.Length ? arguments[flag + 1]
            : environment?.TryGetValue("Machi__Broker__Database", out var database) == true ? database : null;
    }

    public static async Task<MachiProcess> StartAsync(
        string? dataDirectory = null,
        IDictionary<string, string?>? environment = null,
        IEnumerable<string>? extraArguments = null,
        TimeSpan? startupTimeout = null)
    {
        var ownsDataDirectory = dataDirectory is null;
        dataDirectory = Path.GetFullPath(dataDirectory ?? TempDirectory.Create("machi-proc-"));
        var extra = extraArguments?.ToArray() ?? [];

        // A free port can be taken between finding it and binding it: try a few.
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort.Next();
            string[] args = ["serve", "--urls", $"http://127.0.0.1:{port}", "--data", dataDirectory, .. extra];
            var (process, stdout, stderr) = Launch(args, environment, workingDirectory: null);
            var machi = new MachiProcess(process, stdout, stderr, port, dataDirectory, ownsDataDirectory);
            try
            {
                await machi.WaitUntilHealthyAsync(startupTimeout ?? DefaultStartupTimeout);
                machi.Client.DefaultRequestHeaders.Authorization =
                    new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await Tokens.AdminTokenAsync(machi.Client, dataDirectory, DatabaseOf(environment, extra)));
                return machi;
            }
            catch (InvalidOperationException) when (attempt < 3 && machi.StandardError.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                await machi.DisposeProcessAsync();
            }
            catch
            {
                await machi.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Runs a <c>machi</c> command to completion (e.g. <c>--help</c>) and returns what it printed.</summary>
    public static async Task<CliResult> RunAsync(
        IEnumerable<string> arguments,
        IDictionary<string, string?>? environment = null,
        string? workingDirectory = null,
        TimeSpan? timeout = null)
    {
        var (process, stdout, stderr) = Launch(arguments, environment, workingDirectory);
        using (process)
        {
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"machi {string.Join(' ', arguments)} did not exit in time.\n{stdout}\n{stderr}");
            }

            return new CliResult(process.ExitCode, stdout.ToString(), stderr.ToString());
        }
    }

    /// <summary>SIGKILL, as a crash or power cut would: no shutdown code runs. Waits until the process is gone.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.WaitForExit();
    }

    /// <summary>SIGTERM, as systemd or Kubernetes would send; waits for the exit and returns its code.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            {
                UseShellExecute = false,
            }) ?? throw new InvalidOperationException("Could not run kill(1).");
            await kill.WaitForExitAsync();
        }

        return await WaitForExitAsync(timeout ?? DefaultStopTimeout);
    }

    /// <summary>Waits for the process to exit by itself; kills it and throws when it does not in time.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"machi (pid {_process.Id}) did not exit within {timeout}.\n{Output}");
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        await DisposeProcessAsync();
        if (_ownsDataDirectory)
        {
            TempDirectory.Delete(DataDirectory);
        }
    }

    private async Task DisposeProcessAsync()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            Kill();
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private async Task WaitUntilHealthyAsync(TimeSpan timeout)
    {
        using var probe = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"machi exited with code {_process.ExitCode} before it was healthy.\n{Output}");
            }

            // Another test's server can take the port between FreePort and this process binding it; then /health
            // answers from that server. Only this process's own "Now listening" line makes an answer ours.
            if (!StandardOutput.Contains($"Now listening on: http://127.0.0.1:{Port}", StringComparison.Ordinal))
            {
                await Task.Delay(100);
                continue;
            }

            try
            {
                using var response = await probe.GetAsync(new Uri("health", UriKind.Relative));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException e) when (e.InnerException is SocketException or null)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // A probe timed out; try again until the deadline.
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"machi was not healthy within {timeout}.\n{Output}");
    }

    private static (Process Process, OutputBuffer Stdout, OutputBuffer Stderr) Launch(
        IEnumerable<string> arguments, IDictionary<string, string?>? environment, string? workingDirectory)
    {
        var start = new ProcessStartInfo(MachiBinary.Dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        start.ArgumentList.Add(MachiBinary.Dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // The child must not inherit settings meant for the test run itself.
        start.Environment.Remove("ASPNETCORE_URLS");
        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment.Remove("DOTNET_ENVIRONMENT");
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            start.Environment[name] = value;
        }

        var stdout = new OutputBuffer();
        var stderr = new OutputBuffer();
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => stdout.Append(e.Data);
        process.ErrorDataReceived += (_, e) => stderr.Append(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start {start.FileName}.");
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, stdout, stderr);
    }

    private sealed class OutputBuffer
    {
        private readonly StringBuilder _text = new();

        public void Append(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_text)
            {
                _text.AppendLine(line);
            }
        }

        public override string ToString()
        {
            lock (_text)
            {
                return _text.ToString();
            }
        }
    }
}
