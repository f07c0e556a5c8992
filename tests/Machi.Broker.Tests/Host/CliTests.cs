using Machi.Broker.Tests.Infrastructure;
using Machi.Host.Cli;

namespace Machi.Broker.Tests.Host;

public sealed class CliTests
{
    private static readonly string[] AllSubcommands = ["serve", "help", "import", "export", "simulate", "snow", "bench", "user", "client"];

    [Fact]
    public async Task Help_lists_every_subcommand_and_exits_0()
    {
        var result = await MachiProcess.RunAsync(["--help"]);

        Assert.True(result.ExitCode == 0, result.ToString());
        foreach (var command in AllSubcommands)
        {
            Assert.Matches($@"(?m)^  {command}\s", result.StandardOutput);
        }

        Assert.Contains("not yet available", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("--urls", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("--data", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_option_is_a_clear_error_with_exit_code_2()
    {
        var result = await MachiProcess.RunAsync(["serve", "--frobnicate"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("unknown option '--frobnicate'", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("machi --help", result.StandardError, StringComparison.Ordinal);
        Assert.Equal("", result.StandardOutput);
    }

    [Fact]
    public async Task A_planned_command_says_it_is_not_yet_available_and_exits_non_zero()
    {
        var result = await MachiProcess.RunAsync(["bench", "--scenario", "all"]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("not yet available", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_prints_the_version()
    {
        var result = await MachiProcess.RunAsync(["--version"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Matches(@"^machi \d+\.\d+\.\d+", result.StandardOutput);
    }

    [Theory]
    [InlineData("")]
    [InlineData("serve")]
    public void No_command_or_serve_alone_serves_with_defaults(string commandLine)
    {
        var serve = Assert.IsType<ServeCommand>(CommandLine.Parse(Split(commandLine)));

        Assert.Null(serve.Options.Urls);
        Assert.Null(serve.Options.DataDirectory);
    }

    [Theory]
    [InlineData("serve --urls http://127.0.0.1:9000 --data /tmp/d")]
    [InlineData("--urls=http://127.0.0.1:9000 --data=/tmp/d")]
    [InlineData("serve --data /tmp/d --urls http://127.0.0.1:9000")]
    public void Serve_options_are_read_in_either_form(string commandLine)
    {
        var serve = Assert.IsType<ServeCommand>(CommandLine.Parse(Split(commandLine)));

        Assert.Equal("http://127.0.0.1:9000", serve.Options.Urls);
        Assert.Equal("/tmp/d", serve.Options.DataDirectory);
    }

    [Theory]
    [InlineData("--bogus", "unknown option '--bogus'")]
    [InlineData("serve -x", "unknown option '-x'")]
    [InlineData("serve --urls", "'--urls' needs a value")]
    [InlineData("serve --urls --data d", "'--urls' needs a value")]
    [InlineData("serve --data", "'--data' needs a directory")]
    [InlineData("serve --urls 127.0.0.1:80", "not an http:// or https:// URL")]
    [InlineData("serve extra", "unexpected argument 'extra'")]
    [InlineData("frobnicate", "unknown command 'frobnicate'")]
    [InlineData("help frobnicate", "unknown command 'frobnicate'")]
    [InlineData("--version x", "unexpected argument 'x'")]
    public void Bad_arguments_are_usage_errors_that_say_what_is_wrong(string commandLine, string message)
    {
        var error = Assert.IsType<UsageError>(CommandLine.Parse(Split(commandLine)));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bench")]
    public void Planned_commands_are_recognised_as_not_yet_available(string name)
    {
        var command = Assert.IsType<UnavailableCommand>(CommandLine.Parse([name, "--anything"]));

        Assert.Equal(name, command.Name);
    }

    [Theory]
    [InlineData("export --data /tmp/d --out /tmp/a", "/tmp/a", "/tmp/d", null)]
    [InlineData("export --database Host=db --out=/tmp/a", "/tmp/a", null, "Host=db")]
    [InlineData("import --in /tmp/a --data /tmp/d --database Host=db", "/tmp/a", "/tmp/d", "Host=db")]
    public void Export_and_import_take_the_archive_and_where_the_city_is(string commandLine, string archive, string? data, string? database)
    {
        var command = CommandLine.Parse(Split(commandLine));

        Assert.Equal(commandLine.StartsWith("export", StringComparison.Ordinal)
            ? new ExportCommand(archive, data, database)
            : new ImportCommand(archive, data, database), command);
    }

    [Theory]
    [InlineData("export --data /tmp/d", "'machi export' needs --out PATH")]
    [InlineData("import --data /tmp/d", "'machi import' needs --in PATH")]
    [InlineData("import --in /tmp/a --out /tmp/b", "unknown option '--out'")]
    public void Export_and_import_without_their_archive_are_usage_errors(string commandLine, string message)
    {
        var error = Assert.IsType<UsageError>(CommandLine.Parse(Split(commandLine)));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("help", null)]
    [InlineData("-h", null)]
    [InlineData("--help", null)]
    [InlineData("help serve", "serve")]
    [InlineData("serve --help", "serve")]
    [InlineData("export --help", "export")]
    [InlineData("help import", "import")]
    public void Help_is_asked_for_in_several_ways(string commandLine, string? topic)
    {
        Assert.Equal(new HelpCommand(topic), CommandLine.Parse(Split(commandLine)));
    }

    [Fact]
    public async Task Cli_exit_codes_are_0_for_help_1_for_unavailable_2_for_usage()
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();

        Assert.Equal(0, await MachiCli.RunAsync(["help", "serve"], output, errors));
        Assert.Equal(1, await MachiCli.RunAsync(["bench", "x"], output, errors));
        Assert.Equal(2, await MachiCli.RunAsync(["--nope"], output, errors));
        Assert.Contains("Usage: machi [serve]", output.ToString(), StringComparison.Ordinal);
    }

    private static string[] Split(string commandLine) =>
        commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
}
