using System.Runtime.InteropServices;
using Machi.Bench;
using Machi.Bench.Snow;

if (SnowScenario.IsSnow(args))
{
    var snow = SnowScenario.Parse(args, out var snowError);
    if (snow is null)
    {
        await Console.Error.WriteLineAsync(snowError);
        await Console.Error.WriteLineAsync(SnowScenario.Usage);
        return 2;
    }

    using var stopSnow = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stopSnow.Cancel();
    };
    return await SnowScenario.RunAsync(snow, BenchRunner.RepositoryRoot(), Console.Out, stopSnow.Token);
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
