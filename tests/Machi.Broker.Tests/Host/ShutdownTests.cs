using System.Net;
using System.Text.Json;
using Machi.Broker.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Tests.Host;

public sealed class ShutdownTests
{
    [Fact]
    public async Task A_request_in_flight_when_the_host_stops_still_completes()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await MachiServer.StartAsync(configureApp: app => app.MapGet("/test/slow", async () =>
        {
            entered.SetResult();
            await release.Task;
            return TypedResults.Ok("done");
        }));

        var request = server.Client.GetAsync(new Uri("/test/slow", UriKind.Relative));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var stopping = server.StopAsync();
        await Task.Delay(200);
        Assert.False(stopping.IsCompleted, "the host waits for the request in flight");
        release.SetResult();

        using var response = await request.WaitAsync(TimeSpan.FromSeconds(10));
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"done\"", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task SIGTERM_stops_the_process_cleanly_with_exit_code_0()
    {
        await using var machi = await MachiProcess.StartAsync();
        (await machi.Client.GetAsync(new Uri("/health", UriKind.Relative))).Dispose();

        var exitCode = await machi.StopAsync();

        Assert.True(exitCode == 0, $"exit code {exitCode}\n{machi.Output}");
        Assert.Contains("Application is shutting down", machi.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Machi 0.", machi.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("\"LogLevel\":\"Error\"", machi.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("\"LogLevel\":\"Critical\"", machi.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("", machi.StandardError);
    }

    [Fact]
    public async Task Logs_are_json_lines_when_output_is_not_a_terminal()
    {
        await using var machi = await MachiProcess.StartAsync();
        await machi.StopAsync();

        var lines = machi.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.NotEmpty(lines);
        foreach (var line in lines)
        {
            using var entry = JsonDocument.Parse(line);
            Assert.True(entry.RootElement.TryGetProperty("LogLevel", out _), line);
            Assert.True(entry.RootElement.TryGetProperty("Category", out _), line);
            Assert.True(entry.RootElement.TryGetProperty("Timestamp", out _), line);
        }
    }

    [Fact]
    public async Task A_killed_process_can_be_restarted_on_the_same_data_directory()
    {
        var data = TempDirectory.Create();
        try
        {
            await using (var first = await MachiProcess.StartAsync(dataDirectory: data))
            {
                first.Kill();
                Assert.True(first.HasExited);
                Assert.NotEqual(0, first.ExitCode);
            }

            await using var second = await MachiProcess.StartAsync(dataDirectory: data);
            using var response = await second.Client.GetAsync(new Uri("/health", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            TempDirectory.Delete(data);
        }
    }
}
