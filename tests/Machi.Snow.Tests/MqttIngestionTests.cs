using System.Globalization;
using System.Text;
using Machi.Snow.Ingestion;
using Machi.Snow.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;

namespace Machi.Snow.Tests;

public sealed class MqttIngestionTests
{
    [Fact]
    public async Task Positions_published_on_the_units_topic_update_its_Vehicle_and_every_rejection_reason_is_counted()
    {
        await using var mosquitto = await MosquittoBroker.StartAsync();
        await using var server = await MachiServer.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Snow:Mqtt:Server"] = $"mqtt://127.0.0.1:{mosquitto.Port}",
        });
        var token = await Plows.RegisterAsync(server, "mqtt-1");
        var ingestion = server.Services.GetRequiredService<SnowIngestion>();
        using var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", mosquitto.Port).WithClientId("gps-mqtt-1").Build());
        var now = DateTimeOffset.UtcNow;

        async Task PublishAsync(string device, string payload) =>
            await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"machi/snow/{device}").WithPayload(Encoding.UTF8.GetBytes(payload))
                .WithQualityOfServiceLevel(MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());

        // The service subscribes shortly after start: publish until the position arrives.
        var accepted = string.Create(CultureInfo.InvariantCulture,
            $$"""{"lat": 37.4947, "lon": 139.9299, "timestamp": {{now.ToUnixTimeSeconds()}}, "speed": 8, "bearing": 270, "plow": "plowing", "token": "{{token}}"}""");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (ingestion.Accepted == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no MQTT position was ingested:\n" + mosquitto.Output);
            await PublishAsync("mqtt-1", accepted);
            await Task.Delay(300);
        }

        var vehicle = await Plows.VehicleAsync(server.Client, "mqtt-1");
        Assert.Equal("plowing", vehicle!["plowState"]!.GetValue<string>());
        Assert.Equal(270, vehicle["heading"]!.GetValue<double>());
        Assert.Equal(-139.9299, -vehicle["location"]!["coordinates"]![0]!.GetValue<double>(), 6);

        var t = now.ToUnixTimeSeconds();
        var cases = new (string Device, string Payload, string Reason)[]
        {
            ("mqtt-1", "not json", "malformed"),
            ("mqtt-1", "[1, 2]", "malformed"),
            ("mqtt-1", """{"lat": "x", "lon": 139.93}""", "malformed"),
            ("mqtt-1", """{"lat": 37.5, "lon": 139.93}""", "missing_token"),
            ("ghost-m", $$"""{"lat": 37.5, "lon": 139.93, "token": "{{token}}"}""", "unknown_device"),
            ("mqtt-1", """{"lat": 37.5, "lon": 139.93, "token": "wrong"}""", "invalid_token"),
            ("mqtt-1", $$"""{"lat": 43.06, "lon": 141.35, "token": "{{token}}"}""", "outside_city"),
            ("mqtt-1", $$"""{"lat": 37.4947, "lon": 139.9299, "speed": 100, "timestamp": {{t + 1}}, "token": "{{token}}"}""", "too_fast"),
            ("mqtt-1", $$"""{"lat": 37.4947, "lon": 139.9299, "timestamp": {{t + 7200}}, "token": "{{token}}"}""", "future_timestamp"),
        };
        foreach (var (device, payload, reason) in cases)
        {
            var before = ingestion.RejectedSinceStart[reason];
            await PublishAsync(device, payload);
            deadline = DateTime.UtcNow.AddSeconds(10);
            while (ingestion.RejectedSinceStart[reason] == before)
            {
                Assert.True(DateTime.UtcNow < deadline, $"{payload} on {device} was not rejected as {reason}");
                await Task.Delay(50);
            }
        }

        Assert.Null(await Plows.VehicleAsync(server.Client, "ghost-m"));
        Assert.Equal("plowing", (await Plows.VehicleAsync(server.Client, "mqtt-1"))!["plowState"]!.GetValue<string>());
        Assert.Equal(37.4947, (await Plows.VehicleAsync(server.Client, "mqtt-1"))!["location"]!["coordinates"]![1]!.GetValue<double>(), 6);
    }
}
