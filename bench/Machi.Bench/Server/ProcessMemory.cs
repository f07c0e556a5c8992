using System.Globalization;

namespace Machi.Bench.Server;

/// <summary>A process's resident memory now (VmRSS) and at its peak (VmHWM), from /proc/PID/status (Linux).</summary>
internal sealed record ProcessMemory(long ResidentBytes, long PeakResidentBytes)
{
    public static ProcessMemory? Read(int processId)
    {
        string path = string.Create(CultureInfo.InvariantCulture, $"/proc/{processId}/status");
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        long? rss = null;
        long? peak = null;
        foreach (string line in lines)
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kilobytes(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kilobytes(line);
            }
        }

        return rss is null ? null : new ProcessMemory(rss.Value, peak ?? rss.Value);
    }

    // "VmRSS:\t  123456 kB"
    private static long? Kilobytes(string line)
    {
        var value = line.AsSpan(line.IndexOf(':', StringComparison.Ordinal) + 1).Trim();
        int space = value.IndexOf(' ');
        if (space > 0)
        {
            value = value[..space];
        }

        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : null;
    }
}
