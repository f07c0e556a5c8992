using System.Diagnostics;
using System.Globalization;

namespace Machi.Bench.Server;

/// <summary>
/// CPU time a process has used (user + system), from /proc/PID/stat (Linux; clock ticks of 1/100 s). The push
/// scenarios report it for the broker and for the bench over their load, so a reader can tell whether the
/// receivers in the bench took the cores the broker needed.
/// </summary>
internal static class ProcessCpu
{
    private const double TicksPerSecond = 100;

    public static TimeSpan? Read(int? processId)
    {
        if (processId is not { } pid)
        {
            return null;
        }

        string text;
        try
        {
            text = File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // "pid (comm) state ppid …": comm may hold spaces, so count fields after its closing parenthesis;
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after it.
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return fields.Length > 12
            && long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out long user)
            && long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out long system)
                ? TimeSpan.FromSeconds((user + system) / TicksPerSecond)
                : null;
    }

    public static TimeSpan Own() => Process.GetCurrentProcess().TotalProcessorTime;

    /// <summary>CPU used between two readings, as a percentage of one core over <paramref name="elapsed"/>.</summary>
    public static double? Percent(TimeSpan? before, TimeSpan? after, TimeSpan elapsed) =>
        before is { } b && after is { } a && elapsed > TimeSpan.Zero ? Math.Round((a - b) / elapsed * 100, 1) : null;
}

/// <summary>The broker's and the bench's CPU over one stretch of a run.</summary>
internal sealed class CpuWindow
{
    private readonly int? _brokerPid;
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly TimeSpan? _broker;
    private readonly TimeSpan _bench;

    private CpuWindow(int? brokerPid)
    {
        _brokerPid = brokerPid;
        _broker = ProcessCpu.Read(brokerPid);
        _bench = ProcessCpu.Own();
    }

    public static CpuWindow Start(int? brokerPid) => new(brokerPid);

    public Reporting.CpuReport Stop()
    {
        var elapsed = Stopwatch.GetElapsedTime(_start);
        return new Reporting.CpuReport(
            Math.Round(elapsed.TotalSeconds, 3),
            ProcessCpu.Percent(_broker, ProcessCpu.Read(_brokerPid), elapsed),
            ProcessCpu.Percent(_bench, ProcessCpu.Own(), elapsed));
    }
}
