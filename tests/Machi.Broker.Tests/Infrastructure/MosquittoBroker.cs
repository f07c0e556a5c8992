using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>
/// A real mosquitto (Debian's package, which test.sh installs) on a free loopback port, as a child process with its
/// own config file. It can be stopped and started again on the same port (a broker that goes away and comes back).
/// With <c>persistent</c>, sessions and queued QoS ≥ 1 messages survive such a restart, as on a production broker.
/// </summary>
public sealed class MosquittoBroker : IAsyncDisposable
{
    public const string Binary = "/usr/sbin/mosquitto";

    private readonly string _directory;
    private readonly string _configFile;
    private readonly StringBuilder _output = new();
    private Process? _process;

    private MosquittoBroker(int port, bool persistent, TestCertificates? tls)
    {
        Port = port;
        _directory = TempDirectory.Create("machi-mosquitto-");
        _configFile = Path.Combine(_directory, "mosquitto.conf");
        var config = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"listener {port} 127.0.0.1")
            .AppendLine("allow_anonymous true")
            // Run as whoever runs the tests (as root it would switch to the user "mosquitto", which cannot write here).
            .AppendLine(CultureInfo.InvariantCulture, $"user {Environment.UserName}")
            .AppendLine("log_dest stderr")
            .AppendLine(CultureInfo.InvariantCulture, $"persistence {(persistent ? "true" : "false")}");
        if (persistent)
        {
            config.AppendLine(CultureInfo.InvariantCulture, $"persistence_location {_directory}/");
        }

        if (tls is not null)
        {
            // A second listener speaking MQTT over TLS with a certificate for 127.0.0.1 issued by the test's own CA.
            TlsPort = FreePort.Next();
            config.AppendLine(CultureInfo.InvariantCulture, $"listener {TlsPort} 127.0.0.1")
                .AppendLine(CultureInfo.InvariantCulture, $"certfile {tls.WriteServerCertificate(_directory)}")
                .AppendLine(CultureInfo.InvariantCulture, $"keyfile {tls.WriteServerKey(_directory)}");
        }

        File.WriteAllText(_configFile, config.ToString());
    }

    public int Port { get; }

    /// <summary>The port of the TLS listener (0 without one).</summary>
    public int TlsPort { get; }

    /// <summary>What mosquitto printed, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>An NGSI-LD MQTT endpoint uri for <paramref name="topic"/> on this broker.</summary>
    public Uri Endpoint(string topic) => new($"mqtt://127.0.0.1:{Port}/{topic}");

    /// <summary>An mqtts endpoint uri for <paramref name="topic"/> on the TLS listener.</summary>
    public Uri SecureEndpoint(string topic) => new($"mqtts://127.0.0.1:{TlsPort}/{topic}");

    public static async Task<MosquittoBroker> StartAsync(bool persistent = false, TestCertificates? tls = null)
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: install the Debian package mosquitto (./test.sh does).");
        var broker = new MosquittoBroker(FreePort.Next(), persistent, tls);
        try
        {
            await broker.StartAgainAsync();
            return broker;
        }
        catch
        {
            await broker.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts mosquitto (again) on <see cref="Port"/> and waits until it accepts connections.</summary>
    public async Task StartAgainAsync()
    {
        Assert.Null(_process);
        var process = new Process
        {
            StartInfo = new ProcessStartInfo(Binary, ["-c", _configFile])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                _process = null;
                process.Dispose();
                Assert.Fail($"mosquitto exited at start:\n{Output}");
            }

            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync("127.0.0.1", Port);
                return;
            }
            catch (SocketException) when (clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>Stops mosquitto as a service manager would (SIGTERM, so a persistent one saves its state) and waits for the exit.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        if (!process.HasExited)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false })
                ?? throw new InvalidOperationException("Could not run kill(1).");
            await kill.WaitForExitAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }
        }

        process.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { } process && !process.HasExited)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
        TempDirectory.Delete(_directory);
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
