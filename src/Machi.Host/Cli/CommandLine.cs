namespace Machi.Host.Cli;

/// <summary>What the command line asked for, parsed once; <see cref="MachiCli"/> carries it out.</summary>
internal abstract record CliCommand;

internal sealed record ServeCommand(ServeOptions Options) : CliCommand;

/// <summary>Help for everything (<paramref name="Topic"/> null) or for one subcommand.</summary>
internal sealed record HelpCommand(string? Topic) : CliCommand;

internal sealed record VersionCommand : CliCommand;

/// <summary>A subcommand that is planned but not in this build.</summary>
internal sealed record UnavailableCommand(string Name) : CliCommand;

/// <summary><c>machi user add</c>: an account made by staff, e-mail taken as verified.</summary>
internal sealed record UserAddCommand(string Role, string Email, string Password, string? DataDirectory, string? Database = null) : CliCommand;

/// <summary><c>machi client add</c>: an OAuth client for a service, device, app or another city OS.</summary>
internal sealed record ClientAddCommand(
    string Name, IReadOnlyList<string> Scopes, bool Admin, IReadOnlyList<Uri> RedirectUris, bool Public, string? DataDirectory, string? Database = null,
    string? Operator = null, IReadOnlyList<string>? Purposes = null, IReadOnlyList<string>? Categories = null) : CliCommand;

/// <summary><c>machi export</c>: all of a city's data (SQLite data directory or PostgreSQL) into an archive directory.</summary>
internal sealed record ExportCommand(string Archive, string? DataDirectory, string? Database) : CliCommand;

/// <summary><c>machi import</c>: an archive into an empty SQLite data directory or PostgreSQL database.</summary>
internal sealed record ImportCommand(string Archive, string? DataDirectory, string? Database) : CliCommand;

/// <summary><c>machi audit verify</c>: checks the hash chain of the access log.</summary>
internal sealed record AuditVerifyCommand(string? DataDirectory, string? Database = null) : CliCommand;

/// <summary><c>machi snow device add</c>: registers a snowplow GPS unit and prints its token (shown once).</summary>
internal sealed record SnowDeviceAddCommand(string Id, string? Name, string? DataDirectory) : CliCommand;

/// <summary><c>machi simulate snowplows</c>: simulated plows reporting through the OsmAnd protocol.</summary>
internal sealed record SimulateSnowplowsCommand(int Count, Uri Url, string? DataDirectory, TimeSpan Interval, TimeSpan Duration) : CliCommand;

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
        new("export", "Write all of a city's data to an archive: machi export --data DIR | --database CS --out PATH", Available: true),
        new("import", "Load a city archive into an empty target: machi import --in PATH --data DIR | --database CS", Available: true),
        new("simulate", "Run a device simulator: machi simulate snowplows --count 250 [--url URL] [--data DIR]", Available: true),
        new("snow", "Snowplow Navi: machi snow device add --id ID [--name NAME] [--data DIR]", Available: true),
        new("bench", "Run load benchmarks (the ./machi launcher runs bench/Machi.Bench)", Available: false),
        new("user", "Add an account: machi user add --role staff --email E --password P", Available: true),
        new("client", "Register an API client: machi client add --name NAME [--scope S …] [--admin] [--purpose P … --category C …]", Available: true),
        new("audit", "Check the access log's hash chain: machi audit verify [--data DIR]", Available: true),
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
            case "user" or "client" or "simulate" or "snow" or "export" or "import" when args.Count > 1 && args[1] is "-h" or "--help":
                return new HelpCommand(first);
            case "user":
                return args.Count > 1 && args[1] == "add" ? ParseUserAdd(args) : new UsageError("'machi user' takes 'add' (machi help user)");
            case "client":
                return args.Count > 1 && args[1] == "add" ? ParseClientAdd(args) : new UsageError("'machi client' takes 'add' (machi help client)");
            case "export":
                return ParseMove(args, "--out", (path, data, database) => new ExportCommand(path, data, database));
            case "import":
                return ParseMove(args, "--in", (path, data, database) => new ImportCommand(path, data, database));
            case "audit":
                return args.Count > 1 && args[1] == "verify" ? ParseAuditVerify(args) : new UsageError("'machi audit' takes 'verify'");
            case "simulate":
                return args.Count > 1 && args[1] == "snowplows" ? ParseSimulateSnowplows(args) : new UsageError("'machi simulate' takes 'snowplows' (machi help simulate)");
            case "snow":
                return args.Count > 2 && args[1] == "device" && args[2] == "add" ? ParseSnowDeviceAdd(args) : new UsageError("'machi snow' takes 'device add' (machi help snow)");
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
        string? database = null;
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
                case "--database":
                    if (string.IsNullOrWhiteSpace(value))
                    {
                        return new UsageError("option '--database' needs a PostgreSQL connection string, e.g. --database \"Host=127.0.0.1;Database=machi;Username=machi\"");
                    }

                    database = value;
                    break;
                default:
                    return new UsageError($"unknown option '{name}'");
            }
        }

        return new ServeCommand(new ServeOptions { Urls = urls, DataDirectory = data, Database = database });
    }

    private static CliCommand ParseUserAdd(IReadOnlyList<string> args)
    {
        if (ParseOptions(args, 2, ["--role", "--email", "--password", "--data", "--database"], [], out var values, out _) is { } error)
        {
            return error;
        }

        foreach (var required in (string[])["--role", "--email", "--password"])
        {
            if (!values.ContainsKey(required))
            {
                return new UsageError($"'machi user add' needs {required}");
            }
        }

        return new UserAddCommand(values["--role"][0], values["--email"][0], values["--password"][0], values.GetValueOrDefault("--data")?[0], values.GetValueOrDefault("--database")?[^1]);
    }

    /// <summary><c>machi export</c> and <c>machi import</c>: the archive (<paramref name="archive"/>) and where the city is.</summary>
    private static CliCommand ParseMove(IReadOnlyList<string> args, string archive, Func<string, string?, string?, CliCommand> command)
    {
        if (ParseOptions(args, 1, [archive, "--data", "--database"], [], out var values, out _) is { } error)
        {
            return error;
        }

        return values.TryGetValue(archive, out var path)
            ? command(path[^1], values.GetValueOrDefault("--data")?[^1], values.GetValueOrDefault("--database")?[^1])
            : new UsageError($"'machi {args[0]}' needs {archive} PATH (machi help {args[0]})");
    }

    private static CliCommand ParseAuditVerify(IReadOnlyList<string> args) =>
        ParseOptions(args, 2, ["--data", "--database"], [], out var values, out _) is { } error
            ? error
            : new AuditVerifyCommand(values.GetValueOrDefault("--data")?[^1], values.GetValueOrDefault("--database")?[^1]);
    private static CliCommand ParseSnowDeviceAdd(IReadOnlyList<string> args)
    {
        if (ParseOptions(args, 3, ["--id", "--name", "--data"], [], out var values, out _) is { } error)
        {
            return error;
        }

        return values.TryGetValue("--id", out var id)
            ? new SnowDeviceAddCommand(id[^1], values.GetValueOrDefault("--name")?[^1], values.GetValueOrDefault("--data")?[^1])
            : new UsageError("'machi snow device add' needs --id");
    }

    private static CliCommand ParseSimulateSnowplows(IReadOnlyList<string> args)
    {
        if (ParseOptions(args, 2, ["--count", "--url", "--data", "--interval", "--duration"], [], out var values, out _) is { } error)
        {
            return error;
        }

        var count = 250;
        if (values.TryGetValue("--count", out var c) && (!int.TryParse(c[^1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out count) || count is < 1 or > 10_000))
        {
            return new UsageError("--count takes a number of plows from 1 to 10000");
        }

        var url = values.GetValueOrDefault("--url")?[^1] ?? MachiHost.DefaultUrls;
        if (BadUrl(url) is not null || !Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var uri))
        {
            return new UsageError($"'{url}' is not an http:// or https:// URL (--url)");
        }

        var interval = 5.0;
        var duration = 3600.0;
        if (values.TryGetValue("--interval", out var i) && (!double.TryParse(i[^1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out interval) || interval is < 0.1 or > 3600))
        {
            return new UsageError("--interval takes seconds between reports (0.1–3600)");
        }

        if (values.TryGetValue("--duration", out var d) && (!double.TryParse(d[^1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out duration) || duration is < 1 or > 7 * 86400))
        {
            return new UsageError("--duration takes seconds to run (1–604800)");
        }

        return new SimulateSnowplowsCommand(count, uri, values.GetValueOrDefault("--data")?[^1], TimeSpan.FromSeconds(interval), TimeSpan.FromSeconds(duration));
    }

    private static CliCommand ParseClientAdd(IReadOnlyList<string> args)
    {
        if (ParseOptions(args, 2, ["--name", "--scope", "--redirect-uri", "--data", "--database", "--operator", "--purpose", "--category"], ["--admin", "--public"], out var values, out var flags) is { } error)
        {
            return error;
        }

        if (!values.TryGetValue("--name", out var name))
        {
            return new UsageError("'machi client add' needs --name");
        }

        var redirects = new List<Uri>();
        foreach (var uri in values.GetValueOrDefault("--redirect-uri") ?? [])
        {
            if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed))
            {
                return new UsageError($"'{uri}' is not an absolute URI (--redirect-uri)");
            }

            redirects.Add(parsed);
        }

        // --scope, --purpose and --category take one value or several separated by spaces or commas.
        List<string> Many(string option) => [.. (values.GetValueOrDefault(option) ?? []).SelectMany(s => s.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries))];
        return new ClientAddCommand(name[^1], Many("--scope"), flags.Contains("--admin"), redirects, flags.Contains("--public"),
            values.GetValueOrDefault("--data")?[^1], values.GetValueOrDefault("--database")?[^1],
            values.GetValueOrDefault("--operator")?[^1], Many("--purpose"), Many("--category"));
    }

    /// <summary>Reads <c>--name value</c>, <c>--name=value</c> (repeatable) and flags from <paramref name="start"/> on.</summary>
    private static UsageError? ParseOptions(
        IReadOnlyList<string> args, int start, string[] withValue, string[] flagNames,
        out Dictionary<string, List<string>> values, out HashSet<string> flags)
    {
        values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        flags = new HashSet<string>(StringComparer.Ordinal);
        for (var i = start; i < args.Count; i++)
        {
            var arg = args[i];
            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            var name = arg.StartsWith("--", StringComparison.Ordinal) && equals > 0 ? arg[..equals] : arg;
            if (flagNames.Contains(name))
            {
                flags.Add(name);
                continue;
            }

            if (!withValue.Contains(name))
            {
                return arg.StartsWith('-') ? new UsageError($"unknown option '{name}'") : new UsageError($"unexpected argument '{arg}'");
            }

            string value;
            if (!ReferenceEquals(name, arg))
            {
                value = arg[(equals + 1)..];
            }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                value = args[++i];
            }
            else
            {
                return new UsageError($"option '{name}' needs a value");
            }

            if (string.IsNullOrWhiteSpace(value))
            {
                return new UsageError($"option '{name}' needs a value");
            }

            (values.TryGetValue(name, out var list) ? list : values[name] = []).Add(value);
        }

        return null;
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
