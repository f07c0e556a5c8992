using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Machi.Bench.Reporting;

/// <summary>What the numbers were measured on.</summary>
internal static class MachineInfo
{
    public static MachineReport Collect(string repositoryRoot)
    {
        string? commit = Git(repositoryRoot, "rev-parse", "HEAD");
        return new MachineReport(
            Environment.ProcessorCount,
            CpuModel(),
            MemoryBytes(),
            RuntimeInformation.OSDescription,
            RuntimeInformation.OSArchitecture.ToString(),
            RuntimeInformation.FrameworkDescription,
            commit,
            commit is null ? null : Git(repositoryRoot, "rev-parse", "--abbrev-ref", "HEAD"),
            commit is null ? null : Git(repositoryRoot, "status", "--porcelain", "--untracked-files=no") is { Length: > 0 },
            LoadAverage());
    }

    /// <summary>The 1-minute load average before the run: on a shared machine, other work skews every figure.</summary>
    private static double? LoadAverage()
    {
        try
        {
            string first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.TryParse(first, System.Globalization.CultureInfo.InvariantCulture, out double load) ? load : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? CpuModel() => ProcLine("/proc/cpuinfo", "model name");

    private static long? MemoryBytes()
    {
        // "MemTotal:       24589716 kB"
        string? total = ProcLine("/proc/meminfo", "MemTotal");
        string? digits = total?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
        return long.TryParse(digits, System.Globalization.CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : null;
    }

    private static string? ProcLine(string path, string key)
    {
        try
        {
            foreach (string line in File.ReadLines(path))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    private static string? Git(string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo("git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start);
            if (process is null)
            {
                return null;
            }

            string output = process.StandardOutput.ReadToEnd().Trim();
            if (!process.WaitForExit(5000))
            {
                process.Kill();
                return null;
            }

            return process.ExitCode == 0 ? output : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            return null;
        }
    }
}
