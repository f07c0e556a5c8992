using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Durability;

/// <summary>A 2xx means the write is on disk: acknowledged writes survive SIGKILL (crash) or SIGTERM (shutdown).</summary>
public sealed class CrashDurabilityTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Every_acknowledged_write_survives_the_server_stopping_during_a_stream_of_writes(bool kill)
    {
        var data = Path.Combine(Path.GetTempPath(), "machi-crash-" + Guid.NewGuid().ToString("N"));
        try
        {
            var acknowledged = new ConcurrentDictionary<string, double>();
            await using (var server = await MachiProcess.StartAsync(data))
            {
                using var stop = new CancellationTokenSource();
                var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
                {
                    using var client = new HttpClient { BaseAddress = server.BaseAddress };
                    client.DefaultRequestHeaders.Authorization = server.Client.DefaultRequestHeaders.Authorization;
                    for (var i = 0; !stop.IsCancellationRequested; i++)
                    {
                        var id = $"urn:ngsi-ld:Vehicle:w{w}-{i}";
                        try
                        {
                            var created = await client.PostJson(NgsiHttp.Entities, NgsiHttp.Vehicle(id, i));
                            if (created.StatusCode != HttpStatusCode.Created)
                            {
                                continue;
                            }

                            acknowledged[id] = i;
                            var patched = await client.PatchJson($"{NgsiHttp.Entities}/{id}/attrs/speed", $$"""{"value":{{i + 0.5}}}""");
                            if (patched.StatusCode == HttpStatusCode.NoContent)
                            {
                                acknowledged[id] = i + 0.5;
                            }
                        }
                        catch (HttpRequestException)
                        {
                            return; // the server is gone
                        }
                    }
                })).ToList();

                // Let writes flow, then kill the server without warning while they are in flight.
                while (acknowledged.Count < 300)
                {
                    await Task.Delay(20);
                }

                if (kill)
                {
                    server.Kill();
                }
                else
                {
                    Assert.Equal(0, await server.StopAsync(TimeSpan.FromSeconds(30)));
                }

                await stop.CancelAsync();
                await Task.WhenAll(writers);
            }

            Assert.True(acknowledged.Count >= 300);
            await using var restarted = await MachiProcess.StartAsync(data);
            var missing = new List<string>();
            foreach (var (id, speed) in acknowledged)
            {
                HttpResponseMessage response;
                try
                {
                    response = await restarted.Client.GetAsync($"{NgsiHttp.Entities}/{id}?options=keyValues");
                }
                catch (HttpRequestException ex)
                {
                    Assert.Fail($"The restarted server stopped answering ({ex.Message}).\n{restarted.Output}");
                    throw;
                }

                if (response.StatusCode != HttpStatusCode.OK
                    || JsonNode.Parse(await response.Content.ReadAsStringAsync())!["speed"]!.GetValue<double>() < speed)
                {
                    missing.Add(id);
                }
            }

            Assert.True(missing.Count == 0, $"{missing.Count} of {acknowledged.Count} acknowledged writes were lost, e.g. {string.Join(", ", missing.Take(5))}");
        }
        finally
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }
}
