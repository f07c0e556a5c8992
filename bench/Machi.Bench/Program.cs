using System.Runtime.InteropServices;
using Machi.Bench;
using Machi.Bench.Consent;
using Machi.Bench.Snow;

// The HTTP floor the read scenario is compared with, launched by the bench itself (BrokerServer.LaunchHttpFloorAsync).
if (Machi.Bench.Server.HttpFloor.IsServe(args))
{
    return await Machi.Bench.Server.HttpFloor.ServeAsync(args);
}

// Scenarios with their own options and reports.
if (SnowScenario.IsSnow(args))
{
    var snow = SnowScenario.Parse(args, out var snowError);
    return snow is null
        ? await UsageAsync(snowError, SnowScenario.Usage)
        : await StandaloneAsync(ct => SnowScenario.RunAsync(snow, BenchRunner.RepositoryRoot(), Console.Out, ct));
}

if (ConsentScenario.IsConsent(args))
{
    var consent = ConsentScenario.Parse(args, out var consentError);
    return consent is null
        ? await UsageAsync(consentError, ConsentScenario.Usage)
        : await StandaloneAsync(ct => ConsentScenario.RunAsync(consent, BenchRunner.RepositoryRoot(), Console.Out, ct));
}

var options = BenchOptions.Parse(args, out string? error);
if (options is null)
{
    await Console.Error.WriteLineAsync(error);
    await Console.Error.WriteLineAsync("see --help");
    return 2;
}

if (options.Help)
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

// Ctrl+C or SIGTERM stops the load; the broker this run launched is still stopped and its data removed, and
// what was measured so far is still reported.
using var interrupt = new CancellationTokenSource();
void Interrupt(PosixSignalContext context)
{
    context.Cancel = true;
    interrupt.Cancel();
}

using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);

return await new BenchRunner(options, Console.Out, Console.Error).RunAsync(interrupt.Token);

static async Task<int> UsageAsync(string? error, string usage)
{
    await Console.Error.WriteLineAsync(error);
    await Console.Error.WriteLineAsync(usage);
    return 2;
}

static async Task<int> StandaloneAsync(Func<CancellationToken, Task<int>> run)
{
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };
    try
    {
        return await run(stop.Token);
    }
    catch (BenchFailure failure)
    {
        await Console.Error.WriteLineAsync("bench: " + failure.Message);
        return 1;
    }
}
