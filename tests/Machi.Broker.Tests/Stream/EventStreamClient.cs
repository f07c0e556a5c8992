using System.Text;
using System.Text.Json.Nodes;

namespace Machi.Broker.Tests.Stream;

/// <summary>One server-sent event as a browser's EventSource would dispatch it.</summary>
public sealed record ServerEvent(string? Id, string Event, string Data)
{
    public JsonNode Json => JsonNode.Parse(Data)!;

    public override string ToString() => $"{Event} #{Id}: {Data}";
}

/// <summary>A minimal EventSource: opens the stream and reads events (comments and retry: lines are skipped).</summary>
public sealed class EventStreamClient : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private EventStreamClient(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reader = reader;
    }

    public int Heartbeats { get; private set; }

    public HttpResponseMessage Response => _response;

    /// <summary>Opens the stream; once this returns the server is following changes for this client.</summary>
    public static async Task<EventStreamClient> OpenAsync(HttpClient client, string pathAndQuery, string? lastEventId = null, string? tenant = null, string? contextUrl = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        if (contextUrl is not null)
        {
            request.Headers.TryAddWithoutValidation("Link", $"<{contextUrl}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
        }

        if (tenant is not null)
        {
            request.Headers.Add("NGSILD-Tenant", tenant);
        }

        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"stream answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        return new EventStreamClient(response, reader);
    }

    /// <summary>The next event, or a TimeoutException.</summary>
    public async Task<ServerEvent> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        string? id = null, name = null;
        var data = new StringBuilder();
        try
        {
            while (true)
            {
                var line = await _reader.ReadLineAsync(cts.Token) ?? throw new EndOfStreamException("The stream ended.");
                if (line.Length == 0)
                {
                    if (data.Length > 0 || name is not null)
                    {
                        return new ServerEvent(id, name ?? "message", data.ToString());
                    }

                    continue;
                }

                if (line.StartsWith(':'))
                {
                    Heartbeats++;
                    continue;
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                var field = colon < 0 ? line : line[..colon];
                var value = colon < 0 ? string.Empty : line[(colon + 1)..].TrimStart(' ');
                switch (field)
                {
                    case "id": id = value; break;
                    case "event": name = value; break;
                    case "data": data.Append(data.Length > 0 ? "\n" : string.Empty).Append(value); break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("No event arrived in time.");
        }
    }

    public async Task<List<ServerEvent>> TakeAsync(int count, TimeSpan? timeout = null)
    {
        var events = new List<ServerEvent>();
        for (var i = 0; i < count; i++)
        {
            events.Add(await NextAsync(timeout));
        }

        return events;
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }
}
