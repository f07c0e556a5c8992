using Machi.Host.Cli;

namespace Machi.Snow.Tests;

public sealed class SnowCliTests
{
    [Fact]
    public void Simulate_snowplows_takes_count_url_data_interval_and_duration()
    {
        var command = Assert.IsType<SimulateSnowplowsCommand>(CommandLine.Parse(
            ["simulate", "snowplows", "--count", "250", "--url", "http://127.0.0.1:9090", "--data", "/tmp/d", "--interval", "2.5", "--duration", "60"]));

        Assert.Equal(250, command.Count);
        Assert.Equal(new Uri("http://127.0.0.1:9090/"), command.Url);
        Assert.Equal("/tmp/d", command.DataDirectory);
        Assert.Equal(TimeSpan.FromSeconds(2.5), command.Interval);
        Assert.Equal(TimeSpan.FromSeconds(60), command.Duration);
        Assert.Equal(new Uri("http://127.0.0.1:8080/"), Assert.IsType<SimulateSnowplowsCommand>(CommandLine.Parse(["simulate", "snowplows"])).Url);
    }

    [Theory]
    [InlineData("simulate", "takes 'snowplows'")]
    [InlineData("simulate meters", "takes 'snowplows'")]
    [InlineData("simulate snowplows --count 0", "--count")]
    [InlineData("simulate snowplows --count many", "--count")]
    [InlineData("simulate snowplows --url ftp://x", "not an http")]
    [InlineData("simulate snowplows --interval 0", "--interval")]
    [InlineData("snow device", "takes 'device add'")]
    [InlineData("snow device add", "needs --id")]
    [InlineData("snow device add --id x --colour red", "unknown option '--colour'")]
    public void Bad_snow_command_lines_are_usage_errors_that_say_why(string commandLine, string message)
    {
        var error = Assert.IsType<UsageError>(CommandLine.Parse(commandLine.Split(' ')));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snow_device_add_prints_a_token_and_refuses_a_bad_id()
    {
        var data = TempDirectory.Create("machi-snow-cli-");
        try
        {
            using var output = new StringWriter();
            using var errors = new StringWriter();
            Assert.Equal(0, await MachiCli.RunAsync(["snow", "device", "add", "--id", "plow-7", "--name", "除雪車7号", "--data", data], output, errors));
            Assert.Matches("""^\{"id":"plow-7","token":"[A-Za-z0-9_-]{43}"\}""", output.ToString().Trim());
            Assert.Equal(1, await MachiCli.RunAsync(["snow", "device", "add", "--id", "no spaces/please", "--data", data], output, errors));
            Assert.Contains("device id", errors.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }

    [Fact]
    public async Task The_simulator_registers_its_units_and_drives_them_through_the_OsmAnd_protocol()
    {
        await using var server = await MachiServer.StartAsync();
        using var output = new StringWriter();
        using var errors = new StringWriter();

        var code = await MachiCli.RunAsync(
            ["simulate", "snowplows", "--count", "5", "--url", server.BaseAddress.AbsoluteUri, "--data", server.DataDirectory, "--interval", "0.5", "--duration", "10"],
            output, errors);

        Assert.True(code == 0, errors.ToString());
        Assert.Contains("0 failed", output.ToString(), StringComparison.Ordinal);
        var vehicles = System.Text.Json.Nodes.JsonNode.Parse(await server.Client.GetStringAsync(new Uri("snow/api/vehicles", UriKind.Relative)))!.AsArray();
        Assert.Equal(5, vehicles.Count);
        Assert.All(vehicles, v => Assert.True(v!["simulated"]!.GetValue<bool>()));
        var entity = await Infrastructure.Plows.VehicleAsync(server.Client, "sim-plow-001");
        Assert.True(entity!["simulated"]!.GetValue<bool>());
    }
}
