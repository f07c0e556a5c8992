using System.Text;
using System.Text.Json;
using Machi.Broker.Moving;
using Machi.Broker.Storage;
using Machi.Trust;
using Machi.Trust.Clients;
using System.Data.Common;

namespace Machi.Host.Cli;

/// <summary>Runs what the command line asked for. Exit codes: 0 done, 1 failed or not available, 2 usage error.</summary>
internal static class MachiCli
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int Usage = 2;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        switch (CommandLine.Parse(args))
        {
            case HelpCommand help:
                await stdout.WriteAsync(help.Topic switch
                {
                    "serve" => ServeHelp(),
                    "user" => UserHelp(),
                    "client" => ClientHelp(),
                    "simulate" => SimulateHelp(),
                    "snow" => SnowHelp(),
                    "export" or "import" => MoveHelp(),
                    _ => Help(),
                });
                return Success;
            case VersionCommand:
                await stdout.WriteLineAsync($"machi {MachiVersion.Current}");
                return Success;
            case UnavailableCommand unavailable:
                await stderr.WriteLineAsync(
                    $"machi: '{unavailable.Name}' is not yet available in this version of Machi ({MachiVersion.Current}).");
                return Failure;
            case UsageError error:
                await stderr.WriteLineAsync($"machi: {error.Message}");
                await stderr.WriteLineAsync("Run 'machi --help' for usage.");
                return Usage;
            case ServeCommand serve:
                return await ServeAsync(serve.Options, stderr);
            case UserAddCommand user:
                return await AdministerAsync(stdout, stderr, async () =>
                {
                    var subject = await TrustAdmin.AddUserAsync(
                        ForWriting(user.DataDirectory, user.Database), user.Role, user.Email, user.Password, CancellationToken.None);
                    await stdout.WriteLineAsync(subject);
                });
            case ClientAddCommand client:
                return await AdministerAsync(stdout, stderr, async () =>
                {
                    var credentials = await TrustAdmin.AddClientAsync(
                        ForWriting(client.DataDirectory, client.Database),
                        new ClientRequest(client.Name, client.Scopes, client.Admin, client.RedirectUris, client.Public, client.Operator, client.Purposes, client.Categories),
                        CancellationToken.None);
                    await stdout.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, string?>
                    {
                        ["client_id"] = credentials.ClientId,
                        ["client_secret"] = credentials.ClientSecret,
                    }));
                });
            case AuditVerifyCommand audit:
                return await VerifyAccessLogAsync(audit, stdout, stderr);
            case ExportCommand export:
                return await MoveAsync(stdout, stderr, "export", () => CityMove.ExportAsync(
                    MachiHost.LoadConfiguration(export.DataDirectory, export.Database), Path.GetFullPath(export.Archive), MachiVersion.Current, CancellationToken.None));
            case ImportCommand import:
                return await MoveAsync(stdout, stderr, "import", () => CityMove.ImportAsync(
                    MachiHost.LoadConfiguration(import.DataDirectory, import.Database), Path.GetFullPath(import.Archive), MachiVersion.Current, CancellationToken.None));
            case SnowDeviceAddCommand device:
                return await AdministerAsync(stdout, stderr, async () =>
                {
                    var token = await SnowAdmin.AddDeviceAsync(ForWriting(device.DataDirectory), device.Id, device.Name, CancellationToken.None);
                    await stdout.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = device.Id, ["token"] = token }));
                });
            case SimulateSnowplowsCommand simulate:
                return await AdministerAsync(stdout, stderr, async () =>
                {
                    using var stop = new CancellationTokenSource();
                    ConsoleCancelEventHandler cancel = (_, e) =>
                    {
                        e.Cancel = true;
                        stop.Cancel();
                    };
                    Console.CancelKeyPress += cancel;
                    try
                    {
                        await SnowAdmin.SimulateAsync(MachiHost.LoadConfiguration(simulate.DataDirectory), simulate.Url, simulate.Count, simulate.Interval, simulate.Duration, stdout, stop.Token);
                    }
                    finally
                    {
                        Console.CancelKeyPress -= cancel;
                    }
                });
            default:
                throw new InvalidOperationException("Unhandled command.");
        }
    }

    /// <summary>
    /// The configuration for a command that adds to the city's data (an account, a client, a device): a SQLite data
    /// directory it creates is for Machi's account alone, as <c>serve</c> creates it.
    /// </summary>
    private static IConfiguration ForWriting(string? dataDirectory, string? database = null)
    {
        var configuration = MachiHost.LoadConfiguration(dataDirectory, database);
        if (string.IsNullOrWhiteSpace(database))
        {
            PrivateDirectory.Create(TrustModule.DataDirectory(configuration));
        }

        return configuration;
    }

    private static async Task<int> ServeAsync(ServeOptions options, TextWriter stderr)
    {
        try
        {
            await using var app = MachiHost.Build(MachiHost.CreateBuilder(options));
            await app.RunAsync();
            return Success;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or DbException or TimeoutException)
        {
            // Port in use, database unreachable, data directory not writable, bad configuration: say so in one line, no stack trace.
            await stderr.WriteLineAsync($"machi: could not serve: {e.Message}");
            return Failure;
        }
    }

    /// <summary>Exit 0 when every record of the access log is in place and unaltered; 1 (and where) otherwise.</summary>
    private static async Task<int> VerifyAccessLogAsync(AuditVerifyCommand audit, TextWriter stdout, TextWriter stderr)
    {
        var configuration = MachiHost.LoadConfiguration(audit.DataDirectory, audit.Database);
        var data = TrustModule.DataDirectory(configuration);
        await using Machi.Broker.Access.IAccessLog log = configuration["Broker:Database"] is { Length: > 0 } database
            ? new Machi.Broker.Access.PostgresAccessLog(Npgsql.NpgsqlDataSource.Create(database), ownsDataSource: true)
            : new Machi.Broker.Access.SqliteAccessLog(Path.Combine(data, "access-log.db"));
        Machi.Broker.Access.AccessLogVerification result;
        try
        {
            result = await log.VerifyAsync();
        }
        catch (Exception e) when (e is System.Data.Common.DbException or ArgumentException or TimeoutException)
        {
            await stderr.WriteLineAsync($"machi: could not open the access log: {e.Message}");
            return Failure;
        }

        if (result.Intact)
        {
            await stdout.WriteLineAsync($"access log intact: {result.Records} records ({result.Redacted} redacted at residents' request)");
            return Success;
        }

        await stderr.WriteLineAsync($"machi: access log TAMPERED at record {result.FirstBrokenSeq}: {result.Problem}");
        return Failure;
    }

    /// <summary>Runs an export or import; prints what moved (rows per part), or one line saying what is wrong.</summary>
    private static async Task<int> MoveAsync(TextWriter stdout, TextWriter stderr, string verb, Func<Task<MoveSummary>> move)
    {
        MoveSummary summary;
        try
        {
            summary = await move();
        }
        catch (MoveException e)
        {
            await stderr.WriteLineAsync($"machi: {e.Message}");
            return Failure;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DbException or InvalidOperationException or TimeoutException)
        {
            await stderr.WriteLineAsync($"machi: could not {verb}: {e.Message}");
            return Failure;
        }

        await stdout.WriteLineAsync($"{verb}ed {summary.Parts.Sum(p => p.Rows)} rows ({summary.Backend}):");
        foreach (var part in summary.Parts.Where(p => p.Rows > 0))
        {
            await stdout.WriteLineAsync($"  {part.Name,-28}{part.Rows,10}");
        }

        return Success;
    }

    private static async Task<int> AdministerAsync(TextWriter stdout, TextWriter stderr, Func<Task> work)
    {
        try
        {
            await work();
            await stdout.FlushAsync();
            return Success;
        }
        catch (ArgumentException e)
        {
            await stderr.WriteLineAsync($"machi: {e.Message}");
            return Failure;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DbException or InvalidOperationException)
        {
            await stderr.WriteLineAsync($"machi: could not open the database: {e.Message}");
            return Failure;
        }
    }

    internal static string UserHelp() =>
        """
        Usage: machi user add --role resident|staff|clinician|merchant|producer --email E --password P [--data DIR] [--database CS]

        Creates an account (its e-mail taken as verified) and prints its subject id. Works with the server stopped.
        --database CS: the PostgreSQL database the server runs on (machi serve --database).

        """;

    internal static string MoveHelp() =>
        """
        Usage: machi export (--data DIR | --database CS) --out PATH
               machi import --in PATH (--data DIR | --database CS)

        Moves all of a city's data between the embedded SQLite data directory and PostgreSQL, through an archive
        directory (one JSON Lines file per table with a manifest of row counts and SHA-256 checksums): entities,
        history, subscriptions, registrations, hosted @contexts, consents, the access log, accounts, OAuth clients
        and keys, unchanged. export writes a new directory PATH; stop the server first for a quiet copy (a
        PostgreSQL export is one consistent snapshot even beside running nodes). import checks the whole archive,
        then loads it into an empty data directory or database in one transaction (exit 1, nothing written, when the
        target already holds a city or the archive was altered). The portal and Snowplow Navi keep their tables in
        DIR/machi.db on either backend: import into the data directory the city used, or copy machi.db along.

        """;

    internal static string SnowHelp() =>
        """
        Usage: machi snow device add --id ID [--name NAME] [--data DIR]

        Registers a snowplow GPS unit (or gives it a new token) and prints {"id": …, "token": …}; the token is shown
        only once. The unit then reports to /snow/osmand?id=ID&token=TOKEN&lat=…&lon=… (OsmAnd/Traccar protocol), to
        MQTT topic machi/snow/ID, or as NGSI-LD updates of urn:ngsi-ld:Vehicle:ID. Works with the server running.

        """;

    internal static string SimulateHelp() =>
        """
        Usage: machi simulate snowplows [--count 250] [--url http://127.0.0.1:8080] [--data DIR] [--interval 5] [--duration 3600]

        Drives simulated plows (sim-plow-001 …, labelled simulated on the map) between the city's 町字 points and
        reports their positions through the OsmAnd HTTP protocol every --interval seconds for --duration seconds.
        The units are registered (with fresh tokens) in the server's database in --data DIR (default ./data) first.

        """;

    internal static string ClientHelp() =>
        """
        Usage: machi client add --name NAME [--scope S …] [--admin] [--redirect-uri URI …] [--public]
                                [--operator ORG] [--purpose P …] [--category C …] [--data DIR] [--database CS]

        Registers an OAuth client and prints {"client_id": …, "client_secret": …} (the secret is shown only once).
          --scope S          a scope the client may ask for (repeat, or separate with spaces): openid profile email
                             offline_access ngsi:read ngsi:write ngsi:admin
          --admin            every scope
          --redirect-uri URI sign people in with authorization code + PKCE, returning to URI (repeatable)
          --public           an app that cannot keep a secret (no client_secret; needs --redirect-uri)
          --operator ORG     who operates the service (shown to residents on the consent page)
          --purpose P        a purpose the service asks residents to consent to (repeat, or separate with commas)
          --category C       a data category it needs: location, vitals, power, water, payments, … (repeatable)
        Without --redirect-uri the client uses client credentials (services, devices, other city OSs).
        Residents can consent only to the purposes and categories a service registered (staff: /account/services).
        --database CS: the PostgreSQL database the server runs on (machi serve --database).

        """;

    internal static string Help()
    {
        var text = new StringBuilder();
        text.AppendLine("machi — Machi city OS (まち): NGSI-LD context broker and city services");
        text.AppendLine();
        text.AppendLine("Usage: machi [command] [options]");
        text.AppendLine();
        text.AppendLine("Commands:");
        foreach (var command in CommandLine.Subcommands)
        {
            var note = command.Available ? "" : "  (not yet available)";
            text.AppendLine($"  {command.Name,-10}{command.Summary}{note}");
        }

        text.AppendLine();
        text.AppendLine("Options:");
        text.AppendLine("  -h, --help     Show help");
        text.AppendLine("  --version      Show the version");
        text.AppendLine();
        text.Append(ServeOptionsText());
        return text.ToString();
    }

    internal static string ServeHelp()
    {
        var text = new StringBuilder();
        text.AppendLine("Usage: machi [serve] [--urls URL] [--data DIR] [--database CONNSTRING]");
        text.AppendLine();
        text.AppendLine("Runs the city OS until Ctrl-C or SIGTERM; in-flight requests finish before it exits.");
        text.AppendLine();
        text.Append(ServeOptionsText());
        return text.ToString();
    }

    private static string ServeOptionsText()
    {
        var text = new StringBuilder();
        text.AppendLine("Serve options:");
        text.AppendLine($"  --urls URL     Address(es) to listen on, ';'-separated (default {MachiHost.DefaultUrls})");
        text.AppendLine("  --data DIR     Data directory, created if missing (default ./data)");
        text.AppendLine("  --database CS  PostgreSQL 15+ with PostGIS instead of the embedded SQLite file, e.g.");
        text.AppendLine("                 \"Host=127.0.0.1;Database=machi;Username=machi\" (Broker:Database, Machi__Broker__Database);");
        text.AppendLine("                 several nodes may share one database");
        text.AppendLine();
        text.AppendLine("Configuration, later sources winning: appsettings.json next to machi.dll, appsettings.json in");
        text.AppendLine("the current directory, environment variables Machi__Section__Key (e.g. Machi__Broker__DataDirectory,");
        text.AppendLine("Machi__Logging__Console__FormatterName=json|simple), then the options above.");
        return text.ToString();
    }
}
