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

        return Parse(text);
    }

    /// <summary>The CPU time of each thread of a process (/proc/PID/task/TID/stat), by thread id; empty when unreadable.</summary>
    public static Dictionary<int, TimeSpan> ReadThreads(int? processId)
    {
        var threads = new Dictionary<int, TimeSpan>();
        if (processId is not { } pid)
        {
            return threads;
        }

        try
        {
            foreach (var task in Directory.EnumerateDirectories(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/task")))
            {
                if (int.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out int tid)
                    && Parse(File.ReadAllText(Path.Combine(task, "stat"))) is { } used)
                {
                    threads[tid] = used;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A thread that ended between listing and reading, or a process that is gone: what was read stands.
        }

        return threads;
    }

    /// <summary>The most CPU one thread used between two readings (<see cref="ReadThreads"/>), as a percentage of one core.</summary>
    public static double? BusiestThreadPercent(Dictionary<int, TimeSpan> before, Dictionary<int, TimeSpan> after, TimeSpan elapsed)
    {
        var busiest = TimeSpan.Zero;
        foreach (var (tid, used) in after)
        {
            var delta = used - before.GetValueOrDefault(tid);
            busiest = delta > busiest ? delta : busiest;
        }

        return after.Count == 0 ? null : Percent(TimeSpan.Zero, busiest, elapsed);
    }

    private static TimeSpan? Parse(string stat)
    {
        // "pid (comm) state ppid …": comm may hold spaces, so count fields after its closing parenthesis;
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after it.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
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
