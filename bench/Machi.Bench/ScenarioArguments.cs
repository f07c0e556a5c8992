using System.Globalization;

namespace Machi.Bench;

/// <summary>
/// The command line of a scenario with its own options (<c>snow</c>, <c>consent</c>): <c>--name value</c> or
/// <c>--name=value</c> pairs, read by the scenario's own switch.
/// </summary>
internal static class ScenarioArguments
{
    /// <summary>Whether the command line asks for <paramref name="scenario"/> (<c>--scenario NAME</c> or <c>--scenario=NAME</c>).</summary>
    public static bool Names(string[] args, string scenario) =>
        args.Select((a, i) => (a, i)).Any(p =>
            (p.a == "--scenario" && p.i + 1 < args.Length && args[p.i + 1] == scenario) || p.a == "--scenario=" + scenario);

    /// <summary>Each option with its value; throws <see cref="FormatException"/> for an option without one.</summary>
    public static IEnumerable<(string Name, string Value)> Pairs(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            var equals = name.IndexOf('=', StringComparison.Ordinal);
            var value = equals >= 0 ? name[(equals + 1)..] : i + 1 < args.Length ? args[++i] : null;
            name = equals >= 0 ? name[..equals] : name;
            yield return (name, value ?? throw new FormatException($"{name} needs a value"));
        }
    }

    public static double Number(string value) => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture);
}
