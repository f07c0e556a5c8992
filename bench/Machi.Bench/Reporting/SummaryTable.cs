using System.Globalization;
using System.Text;

namespace Machi.Bench.Reporting;

/// <summary>The one-screen summary printed at the end of a run.</summary>
internal static class SummaryTable
{
    private static readonly CompositeFormat Row = CompositeFormat.Parse("{0,-13}{1,10}{2,12}{3,9}{4,9}{5,9}{6,9}{7,8}{8,11}{9,8}{10,12}");

    public static string Render(BenchReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var p = report.Parameters;
        var m = report.Machine;
        var text = new StringBuilder();
        bool pushOnly = report.Scenarios.Count > 0 && report.Scenarios.All(s => s.Push is not null);
        Line(text, $"Machi bench · {p.Scenario}" + (report.Scenarios.Count == 0 ? "" :
            (pushOnly
                ? $" · open loop, ≤{p.Concurrency} updates in flight · "
                : $" · {p.Concurrency} workers over ≤{p.Connections} connections (batches: {p.BatchConcurrency} × {p.BatchSize}"
                    + (p.QueryConcurrency is { } queries ? $"; queries: {queries} workers" : "")
                    + (p.ValueVariants != Scenarios.VehicleDocuments.DefaultVariants ? $"; {p.ValueVariants} value variants" : "") + ") · ")
            + (p.Requests is { } requests ? $"{p.WarmupSeconds:0.#} s warm-up + {requests:N0} requests" : $"{p.WarmupSeconds:0.#} s warm-up + {p.DurationSeconds:0.#} s")));
        Line(text, $"{m.Cores} cores · {m.CpuModel ?? m.Architecture} · {m.Os} · {m.Dotnet}" + (m.GitCommit is { } c ? $" · {c[..Math.Min(10, c.Length)]}{(m.GitDirty == true ? "+dirty" : "")}" : ""));
        if (m.LoadAverageAtStart is { } load && load > m.Cores * 0.25)
        {
            Line(text, $"warning: load average was {load:0.0} on {m.Cores} cores when the run started: other work skews these figures");
        }

        if (report.Server is { } server)
        {
            Line(text, $"broker: {server.Url}{(server.Launched ? " (launched here)" : "")}"
                + (server.RssBytesAtEnd is { } rss ? $" · RSS at end {Megabytes(rss)}, peak {Megabytes(server.PeakRssBytes ?? rss)}" : "")
                + (server.PssBytesAtEnd is { } pss ? $" · PSS at end {Megabytes(pss)}" : ""));
        }

        if (report.Baseline is { } baseline)
        {
            Line(text, $"raw: {baseline.Engine}, WAL, synchronous={baseline.Synchronous}, single writer with group commit, one read connection per worker");
        }

        if (report.Scenarios.Count > 0)
        {
            text.AppendLine();
            Line(text, string.Format(CultureInfo.InvariantCulture, Row, "scenario", "req/s", "entities/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "raw req/s", "÷ raw", "µs CPU/req"));
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
                    s.BrokerOverRaw is { } ratio ? ratio.ToString("0.00", CultureInfo.InvariantCulture) : "-",
                    b?.ServerCpuMicrosecondsPerRequest is { } cpu ? Count(cpu) : "-"));
                if (s.Baseline is { } r)
                {
                    Line(text, Under("  └ raw", s, r));
                }

                if (s.HttpFloor is { } floor)
                {
                    Line(text, Under("  └ HTTP floor", s, floor));
                }
            }
        }

        AppendPush(text, report);
        if (report.Memory is { } memory)
        {
            text.AppendLine();
            Line(text, $"memory: {memory.Entities:N0} entities loaded at {Count(memory.Load.EntitiesPerSecond)}/s ({memory.Load.Errors:N0} errors) → RSS "
                + $"{Megabytes(memory.RssAfterLoadBytes)} after load, {Megabytes(memory.RssAfterSettleBytes)} after {memory.SettleSeconds:0.#} s "
                + $"(idle {Megabytes(memory.RssIdleBytes)}, peak {Megabytes(memory.PeakRssBytes)})"
                + (memory.PssAfterSettleBytes is { } pss ? $"; PSS {Megabytes(pss)} after {memory.SettleSeconds:0.#} s" : "")
                + $", data dir {Megabytes(memory.DataDirectoryBytes)}");
        }

        AppendTargets(text, report);
        AppendErrors(text, report);
        foreach (string problem in report.Problems)
        {
            Line(text, "PROBLEM: " + problem);
        }

        return text.ToString();
    }

    /// <summary>A row under a scenario's broker row: its raw baseline, or for read its HTTP floor.</summary>
    private static string Under(string label, ScenarioReport s, LoadReport load) => string.Format(
        CultureInfo.InvariantCulture,
        Row,
        label,
        Count(load.RequestsPerSecond),
        s.Name == "read" ? "-" : Count(load.EntitiesPerSecond),
        load.Requests > 0 ? Milliseconds(load.LatencyMs.P50) : "-",
        load.Requests > 0 ? Milliseconds(load.LatencyMs.P95) : "-",
        load.Requests > 0 ? Milliseconds(load.LatencyMs.P99) : "-",
        load.Requests > 0 ? Milliseconds(load.LatencyMs.Max) : "-",
        Count(load.Errors),
        "",
        "",
        load.ServerCpuMicrosecondsPerRequest is { } cpu ? Count(cpu) : "");

    /// <summary>The push scenarios' rows show their updates; what reached the receivers is said here.</summary>
    private static void AppendPush(StringBuilder text, BenchReport report)
    {
        foreach (var s in report.Scenarios)
        {
            if (s is not { Push: { } push, Broker: { } updates })
            {
                continue;
            }

            var d = push.DeliveryMs;
            string rates = $"{Count(push.OfferedRate)} updates/s offered, {Count(updates.RequestsPerSecond)} achieved (send lag p99 {Milliseconds(push.SendLagMs.P99)} ms)";
            string latency = $"p50 {Milliseconds(d.P50)} ms, p90 {Milliseconds(d.P90)} ms, p99 {Milliseconds(d.P99)} ms, max {Milliseconds(d.Max)} ms";
            string cpu = $"; CPU over the {push.Cpu.Seconds:0.0} s of load and drain: broker {Percent(push.Cpu.BrokerPercent)}, bench {Percent(push.Cpu.BenchPercent)} of one core";
            string rss = $"broker RSS {Megabytes(push.RssBeforeBytes)} before, {Megabytes(push.RssAtEndBytes)} at end (peak {Megabytes(push.PeakRssBytes)})" + cpu;
            text.AppendLine();
            if (push.Notify is { } n)
            {
                Line(text, $"notify: {rates}; {n.Subscriptions} subscriptions, each update matching {n.Fanout}, {n.Endpoints} endpoint URL(s)");
                Line(text, $"  notifications {latency} after the update's 2xx; {push.Received:N0} of {push.Expected:N0} received, "
                    + $"{push.Missing:N0} missing after {push.DrainSeconds:0.0} s, {push.Duplicates:N0} duplicates, {push.BeforeResponse:N0} before the 2xx"
                    + (n.Unexpected > 0 ? $", {n.Unexpected:N0} unexpected" : "")
                    + (n.BrokerTimesSent is { } sent ? $"; broker counted {sent:N0} sent, {n.BrokerTimesFailed:N0} failed" : ""));
                Line(text, "  " + rss);
            }

            if (push.Stream is { } c)
            {
                Line(text, $"sse: {c.Connected:N0} of {c.Clients:N0} streams open in {c.ConnectSeconds:0.0} s; {rates}"
                    + (c.ConnectFailures.Count > 0 ? "; not open: " + string.Join(", ", c.ConnectFailures.Select(f => $"{f.Key} × {f.Value:N0}")) : ""));
                Line(text, $"  events {latency} after the update's 2xx; {push.Received:N0} of {push.Expected:N0} received, {push.Missing:N0} missed after "
                    + $"{push.DrainSeconds:0.0} s ({c.ClientsWithMisses:N0} clients missed some, at most {c.MostMissedByOneClient:N0} each), "
                    + $"{c.Dropped:N0} dropped, {c.Closed:N0} closed, {push.Duplicates:N0} duplicates");
                Line(text, $"  broker RSS {Megabytes(push.RssBeforeBytes)} with the streams open, {Megabytes(push.RssAtEndBytes)} at end (peak {Megabytes(push.PeakRssBytes)})" + cpu);
            }
        }
    }

    private static void AppendTargets(StringBuilder text, BenchReport report)
    {
        var verdicts = new List<string>();
        var postgres = report.Server?.Storage == "postgresql";
        foreach (var s in report.Scenarios)
        {
            if (s.Broker is not { } b)
            {
                continue;
            }

            // Issue 5's figures for the broker on PostgreSQL (the entity count decides whether a query is judged).
            if (postgres)
            {
                switch (s.Name)
                {
                    case "update":
                        verdicts.Add(Verdict($"updates on PostgreSQL ≥ 3,000/s ({Count(b.RequestsPerSecond)})", b.RequestsPerSecond >= 3_000 && b.Errors == 0));
                        break;
                    case "read":
                        verdicts.Add(Verdict($"reads on PostgreSQL ≥ 8,000/s ({Count(b.RequestsPerSecond)})", b.RequestsPerSecond >= 8_000 && b.Errors == 0));
                        break;
                    case "batch-upsert":
                        verdicts.Add(Verdict($"batch upsert on PostgreSQL ≥ 30,000 entities/s ({Count(b.EntitiesPerSecond)})", b.EntitiesPerSecond >= 30_000 && b.Errors == 0));
                        break;
                    case "query-q" or "query-near" when report.Parameters.QueryEntities >= 1_000_000:
                        verdicts.Add(Verdict($"{s.Name} on PostgreSQL over {report.Parameters.QueryEntities:N0} entities p99 < 20 ms ({Milliseconds(b.LatencyMs.P99)} ms)",
                            b.LatencyMs.P99 < 20 && b.Errors == 0));
                        break;
                }

                continue;
            }

            switch (s.Name)
            {
                case "update":
                    verdicts.Add(Verdict($"updates ≥ 5,000/s ({Count(b.RequestsPerSecond)})", b.RequestsPerSecond >= 5_000 && b.Errors == 0));
                    break;
                case "read":
                    verdicts.Add(Verdict(
                        $"reads ≥ 10,000/s with p99 < 5 ms ({Count(b.RequestsPerSecond)}, {Milliseconds(b.LatencyMs.P99)} ms"
                            + (s.HttpFloor is { Requests: > 0 } floor ? $"; the HTTP floor {Count(floor.RequestsPerSecond)}, {Milliseconds(floor.LatencyMs.P99)} ms)" : ")"),
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
                case "notify" when s.Push is { Notify: { } n } push:
                    verdicts.Add(push.OfferedRate >= 1_000 && n.Subscriptions >= 100
                        ? Verdict(
                            $"notifications p50 < 20 ms, p99 < 100 ms at 1,000 updates/s × 100 subscriptions ({Milliseconds(push.DeliveryMs.P50)}, {Milliseconds(push.DeliveryMs.P99)} ms, {push.Missing:N0} missing)",
                            push.DeliveryMs.P50 < 20 && push.DeliveryMs.P99 < 100 && push.Missing == 0 && b.Errors == 0 && b.RequestsPerSecond >= 0.95 * push.OfferedRate)
                        : "notifications at 1,000 updates/s × 100 subscriptions: not judged at this size");
                    break;
                case "sse" when s.Push is { Stream: { } c } push:
                    verdicts.Add(push.OfferedRate >= 50 && c.Clients >= 5_000
                        ? Verdict(
                            $"5,000 streams get each of 50 changes/s within p99 < 1 s ({Milliseconds(push.DeliveryMs.P99)} ms, {c.Connected:N0} open, {push.Missing:N0} missed)",
                            push.DeliveryMs.P99 < 1_000 && push.Missing == 0 && c.Connected == c.Clients && b.Errors == 0 && b.RequestsPerSecond >= 0.95 * push.OfferedRate)
                        : "5,000 streams at 50 changes/s: not judged at this size");
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
            AppendErrors(text, $"HTTP floor {s.Name}", s.HttpFloor);
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

    private static string Percent(double? value) => value is { } v ? v.ToString("0", CultureInfo.InvariantCulture) + " %" : "n/a";

    private static string Megabytes(long? bytes) =>
        bytes is { } b ? (b / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MB" : "n/a";

    private static void Line(StringBuilder text, string line) => text.Append(line).Append('\n');
}
