using System.Globalization;
using System.Text;

namespace Machi.Bench.Reporting;

/// <summary>The one-screen summary printed at the end of a run.</summary>
internal static class SummaryTable
{
    private static readonly CompositeFormat Row = CompositeFormat.Parse("{0,-13}{1,10}{2,12}{3,9}{4,9}{5,9}{6,9}{7,8}{8,11}{9,8}");

    public static string Render(BenchReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var p = report.Parameters;
        var m = report.Machine;
        var text = new StringBuilder();
        Line(text, $"Machi bench · {p.Scenario}" + (report.Scenarios.Count == 0 ? "" :
            $" · {p.Concurrency} workers over ≤{p.Connections} connections (batches: {p.BatchConcurrency} × {p.BatchSize}) · "
            + (p.Requests is { } requests ? $"{p.WarmupSeconds:0.#} s warm-up + {requests:N0} requests" : $"{p.WarmupSeconds:0.#} s warm-up + {p.DurationSeconds:0.#} s")));
        Line(text, $"{m.Cores} cores · {m.CpuModel ?? m.Architecture} · {m.Os} · {m.Dotnet}" + (m.GitCommit is { } c ? $" · {c[..Math.Min(10, c.Length)]}{(m.GitDirty == true ? "+dirty" : "")}" : ""));
        if (m.LoadAverageAtStart is { } load && load > m.Cores * 0.25)
        {
            Line(text, $"warning: load average was {load:0.0} on {m.Cores} cores when the run started: other work skews these figures");
        }

        if (report.Server is { } server)
        {
            Line(text, $"broker: {server.Url}{(server.Launched ? " (launched here)" : "")}"
                + (server.RssBytesAtEnd is { } rss ? $" · RSS at end {Megabytes(rss)}, peak {Megabytes(server.PeakRssBytes ?? rss)}" : ""));
        }

        if (report.Baseline is { } baseline)
        {
            Line(text, $"raw: {baseline.Engine}, WAL, synchronous={baseline.Synchronous}, single writer with group commit, one read connection per worker");
        }

        if (report.Scenarios.Count > 0)
        {
            text.AppendLine();
            Line(text, string.Format(CultureInfo.InvariantCulture, Row, "scenario", "req/s", "entities/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "raw req/s", "÷ raw"));
            foreach (var s in report.Scenarios)
            {
                var b = s.Broker;
                Line(text, string.Format(
                    CultureInfo.InvariantCulture,
                    Row,
                    s.Name,
                    b is null ? "-" : Count(b.RequestsPerSecond),
                    b is null || s.Name == "read" ? "-" : Count(b.EntitiesPerSecond),
                    b is not { Requests: > 0 } ? "-" : Milliseconds(b.LatencyMs.P50),
                    b is not { Requests: > 0 } ? "-" : Milliseconds(b.LatencyMs.P95),
                    b is not { Requests: > 0 } ? "-" : Milliseconds(b.LatencyMs.P99),
                    b is not { Requests: > 0 } ? "-" : Milliseconds(b.LatencyMs.Max),
                    b is null ? "-" : Count(b.Errors),
                    s.Baseline is null ? "-" : Count(s.Baseline.RequestsPerSecond),
                    s.BrokerOverRaw is { } ratio ? ratio.ToString("0.00", CultureInfo.InvariantCulture) : "-"));
                if (s.Baseline is { } r)
                {
                    Line(text, string.Format(
                        CultureInfo.InvariantCulture,
                        Row,
                        "  └ raw",
                        Count(r.RequestsPerSecond),
                        s.Name == "read" ? "-" : Count(r.EntitiesPerSecond),
                        r.Requests > 0 ? Milliseconds(r.LatencyMs.P50) : "-",
                        r.Requests > 0 ? Milliseconds(r.LatencyMs.P95) : "-",
                        r.Requests > 0 ? Milliseconds(r.LatencyMs.P99) : "-",
                        r.Requests > 0 ? Milliseconds(r.LatencyMs.Max) : "-",
                        Count(r.Errors),
                        "",
                        ""));
                }
            }
        }

        if (report.Memory is { } memory)
        {
            text.AppendLine();
            Line(text, $"memory: {memory.Entities:N0} entities loaded at {Count(memory.Load.EntitiesPerSecond)}/s ({memory.Load.Errors:N0} errors) → RSS "
                + $"{Megabytes(memory.RssAfterLoadBytes)} after load, {Megabytes(memory.RssAfterSettleBytes)} after {memory.SettleSeconds:0.#} s "
                + $"(idle {Megabytes(memory.RssIdleBytes)}, peak {Megabytes(memory.PeakRssBytes)}), data dir {Megabytes(memory.DataDirectoryBytes)}");
        }

        AppendTargets(text, report);
        AppendErrors(text, report);
        foreach (string problem in report.Problems)
        {
            Line(text, "PROBLEM: " + problem);
        }

        return text.ToString();
    }

    private static void AppendTargets(StringBuilder text, BenchReport report)
    {
        var verdicts = new List<string>();
        foreach (var s in report.Scenarios)
        {
            if (s.Broker is not { } b)
            {
                continue;
            }

            switch (s.Name)
            {
                case "update":
                    verdicts.Add(Verdict($"updates ≥ 5,000/s ({Count(b.RequestsPerSecond)})", b.RequestsPerSecond >= 5_000 && b.Errors == 0));
                    break;
                case "read":
                    verdicts.Add(Verdict(
                        $"reads ≥ 10,000/s with p99 < 5 ms ({Count(b.RequestsPerSecond)}, {Milliseconds(b.LatencyMs.P99)} ms)",
                        b.RequestsPerSecond >= 10_000 && b.LatencyMs.P99 < 5 && b.Errors == 0));
                    break;
                case "batch-upsert":
                    verdicts.Add(Verdict($"batch upsert ≥ 50,000 entities/s ({Count(b.EntitiesPerSecond)})", b.EntitiesPerSecond >= 50_000 && b.Errors == 0));
                    break;
                case "query-q":
                    verdicts.Add(Verdict($"type+q p99 < 10 ms ({Milliseconds(b.LatencyMs.P99)} ms)", b.LatencyMs.P99 < 10 && b.Errors == 0));
                    break;
                case "query-near":
                    verdicts.Add(Verdict($"near 1 km p99 < 10 ms ({Milliseconds(b.LatencyMs.P99)} ms)", b.LatencyMs.P99 < 10 && b.Errors == 0));
                    break;
                case "temporal-one":
                    verdicts.Add(Verdict($"avg per hour over 100,000 instances < 200 ms ({Milliseconds(b.LatencyMs.P99)} ms p99)", b.LatencyMs.P99 < 200 && b.Errors == 0));
                    break;
                case "temporal-many":
                    verdicts.Add(Verdict($"avg per hour over 1,000 × 1,000 instances < 2 s ({Milliseconds(b.LatencyMs.P99)} ms p99)", b.LatencyMs.P99 < 2_000 && b.Errors == 0));
                    break;
                case "query-within":
                    verdicts.Add(Verdict($"within 1 km² p99 < 15 ms ({Milliseconds(b.LatencyMs.P99)} ms)", b.LatencyMs.P99 < 15 && b.Errors == 0));
                    break;
            }
        }

        if (report.Memory is { Entities: >= 100_000, RssAfterSettleBytes: { } rss })
        {
            verdicts.Add(Verdict($"{report.Memory.Entities:N0} entities < 300 MB RSS ({Megabytes(rss)})", rss < 300L * 1024 * 1024));
        }

        if (verdicts.Count > 0)
        {
            text.AppendLine();
            Line(text, "targets: " + string.Join(" · ", verdicts));
        }
    }

    private static void AppendErrors(StringBuilder text, BenchReport report)
    {
        foreach (var s in report.Scenarios)
        {
            AppendErrors(text, $"broker {s.Name}", s.Broker);
            AppendErrors(text, $"raw {s.Name}", s.Baseline);
        }

        if (report.Memory is { } memory)
        {
            AppendErrors(text, "broker memory load", memory.Load);
        }
    }

    private static void AppendErrors(StringBuilder text, string what, LoadReport? load)
    {
        if (load is null || load.Errors == 0)
        {
            return;
        }

        foreach (var (status, count) in load.ErrorsByStatus)
        {
            string sample = load.ErrorSamples.TryGetValue(status, out string? s) ? ": " + OneLine(s) : "";
            Line(text, $"errors, {what}: {status} × {count:N0}{sample}");
        }
    }

    private static string Verdict(string what, bool met) => (met ? "met " : "MISSED ") + what;

    private static string OneLine(string s)
    {
        string flat = s.ReplaceLineEndings(" ");
        return flat.Length <= 120 ? flat : flat[..120] + "…";
    }

    private static string Count(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Milliseconds(double value) => value switch
    {
        < 10 => value.ToString("0.000", CultureInfo.InvariantCulture),
        < 1000 => value.ToString("0.0", CultureInfo.InvariantCulture),
        _ => value.ToString("N0", CultureInfo.InvariantCulture),
    };

    private static string Megabytes(long? bytes) =>
        bytes is { } b ? (b / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MB" : "n/a";

    private static void Line(StringBuilder text, string line) => text.Append(line).Append('\n');
}
