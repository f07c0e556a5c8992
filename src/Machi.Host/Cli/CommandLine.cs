namespace Machi.Host.Cli;

/// <summary>What the command line asked for, parsed once; <see cref="MachiCli"/> carries it out.</summary>
internal abstract record CliCommand;

internal sealed record ServeCommand(ServeOptions Options) : CliCommand;

/// <summary>Help for everything (<paramref name="Topic"/> null) or for one subcommand.</summary>
internal sealed record HelpCommand(string? Topic) : CliCommand;

internal sealed record VersionCommand : CliCommand;

/// <summary>A subcommand that is planned but not in this build.</summary>
internal sealed record UnavailableCommand(string Name) : CliCommand;

/// <summary>The arguments make no sense; <see cref="Message"/> says why (exit code 2).</summary>
internal sealed record UsageError(string Message) : CliCommand;

/// <summary>A subcommand as listed by <c>machi --help</c>.</summary>
internal sealed record Subcommand(string Name, string Summary, bool Available);

/// <summary>
/// The hand-written parser for <c>machi [command] [options]</c>. Pure: no I/O, never throws on any input.
/// </summary>
internal static class CommandLine
{
    public static IReadOnlyList<Subcommand> Subcommands { get; } =
    [
        new("serve", "Run the city OS: NGSI-LD broker, API docs, health and metrics (the default)", Available: true),
        new("help", "Show this help, or help for one command: machi help serve", Available: true),
        new("import", "Load datasets (CSV, GeoJSON, NGSI-LD) into the broker", Available: false),
        new("export", "Write broker entities out as NGSI-LD or GeoJSON files", Available: false),
        new("simulate", "Run the device simulators (snowplows, meters, vitals)", Available: false),
        new("bench", "Run load benchmarks (the ./machi launcher runs bench/Machi.Bench)", Available: false),
        new("user", "Manage resident and staff accounts", Available: false),
        new("client", "Register and manage API clients", Available: false),
    ];

    public static CliCommand Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count == 0)
        {
            return new ServeCommand(new ServeOptions());
        }

        var first = args[0];
        switch (first)
        {
            case "-h" or "--help":
                return args.Count == 1 ? new HelpCommand(null) : new UsageError($"unexpected argument '{args[1]}' after {first}");
            case "help":
                return args.Count switch
                {
                    1 => new HelpCommand(null),
                    2 when FindSubcommand(args[1]) is not null => new HelpCommand(args[1]),
                    2 => new UsageError($"unknown command '{args[1]}'"),
                    _ => new UsageError($"unexpected argument '{args[2]}'"),
                };
            case "-V" or "--version" or "version":
                return args.Count == 1 ? new VersionCommand() : new UsageError($"unexpected argument '{args[1]}' after {first}");
            case "serve":
                return ParseServe(args, start: 1);
        }

        if (first.StartsWith('-'))
        {
            return ParseServe(args, start: 0);
        }

        return FindSubcommand(first) is { Available: false } planned
            ? new UnavailableCommand(planned.Name)
            : new UsageError($"unknown command '{first}'");
    }

    private static Subcommand? FindSubcommand(string name) =>
        Subcommands.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.Ordinal));

    private static CliCommand ParseServe(IReadOnlyList<string> args, int start)
    {
        string? urls = null;
        string? data = null;
        for (var i = start; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "-h" or "--help")
            {
                return new HelpCommand("serve");
            }

            if (!arg.StartsWith('-'))
            {
                return new UsageError($"unexpected argument '{arg}'");
            }

            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            var name = equals < 0 ? arg : arg[..equals];
            string? value;
            if (equals >= 0)
            {
                value = arg[(equals + 1)..];
            }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                value = args[++i];
            }
            else
            {
                value = null;
            }

            switch (name)
            {
                case "--urls":
                    if (string.IsNullOrWhiteSpace(value))
                    {
                        return new UsageError("option '--urls' needs a value, e.g. --urls http://127.0.0.1:8080");
                    }

                    if (BadUrl(value) is { } bad)
                    {
                        return new UsageError($"'{bad}' is not an http:// or https:// URL (--urls takes one or more, separated by ';')");
                    }

                    urls = value;
                    break;
                case "--data":
                    if (string.IsNullOrWhiteSpace(value))
                    {
                        return new UsageError("option '--data' needs a directory, e.g. --data ./data");
                    }

                    data = value;
                    break;
                default:
                    return new UsageError($"unknown option '{name}'");
            }
        }

        return new ServeCommand(new ServeOptions { Urls = urls, DataDirectory = data });
    }

    private static string? BadUrl(string urls)
    {
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!url.StartsWith("http://", StringComparison.OrdinalIgnoreCase)
                && !url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            {
                return url;
            }
        }

        return null;
    }
}
