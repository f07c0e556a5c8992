using System.Globalization;

namespace Machi.Bench.Server;

/// <summary>
/// A process's resident memory now (VmRSS) and at its peak (VmHWM), from /proc/PID/status, and its proportional set
/// size (Pss, /proc/PID/smaps_rollup; Linux). RSS counts a page once for every mapping of it: SQLite maps the database
/// file once per connection, so with 16 connections open the broker's RSS counts each page of the file it has read up
/// to 16 times (session 24: 620 MB RSS, 275 MB PSS). PSS counts each page once, shared ones split between the
/// processes that map them: the memory the process really holds.
/// </summary>
internal sealed record ProcessMemory(long ResidentBytes, long PeakResidentBytes, long? ProportionalBytes = null)
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

        return rss is null ? null : new ProcessMemory(rss.Value, peak ?? rss.Value, Proportional(processId));
    }

    private static long? Proportional(int processId)
    {
        try
        {
            foreach (string line in File.ReadLines(string.Create(CultureInfo.InvariantCulture, $"/proc/{processId}/smaps_rollup")))
            {
                if (line.StartsWith("Pss:", StringComparison.Ordinal))
                {
                    return Kilobytes(line);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
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
