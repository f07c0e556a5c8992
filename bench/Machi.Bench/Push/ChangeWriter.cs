using System.Diagnostics;
using System.Globalization;
using System.Text;
using Machi.Bench.Load;

namespace Machi.Bench.Push;

/// <summary>
/// The changes a push scenario makes and what it needs to time them: entities of one type, each with a
/// <c>seq</c> Property; change i is <c>PATCH /entities/{id}/attrs {"seq":{"type":"Property","value":i}}</c> on
/// entity i mod entities, and the bench notes when its 2xx arrived. Receivers match what they get by that seq.
/// </summary>
internal sealed class ChangeWriter
{
    private const string JsonMediaType = "application/json";

    private readonly HttpClient _client;
    private readonly Uri[] _attrsUris;
    private readonly long[] _respondedAt;

    public ChangeWriter(HttpClient client, Uri baseUri, string idPrefix, int entities, long changes)
    {
        _client = client;
        _respondedAt = new long[changes];
        string path = baseUri.AbsoluteUri.TrimEnd('/') + "/ngsi-ld/v1/entities/";
        _attrsUris = new Uri[entities];
        for (int n = 0; n < entities; n++)
        {
            _attrsUris[n] = new Uri(path + idPrefix + n.ToString(CultureInfo.InvariantCulture) + "/attrs");
        }
    }

    public long Changes => _respondedAt.LongLength;

    /// <summary>When change i's 2xx arrived (Stopwatch ticks), or 0 when it did not succeed.</summary>
    public long RespondedAt(long change) => Volatile.Read(ref _respondedAt[change]);

    public async ValueTask<Outcome> SendAsync(long change, CancellationToken cancellationToken)
    {
        var body = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{{\"type\":\"Property\",\"value\":{change}}}}}"));
        using var request = new HttpRequestMessage(HttpMethod.Patch, _attrsUris[change % _attrsUris.Length]) { Content = new ByteArrayContent(body) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", JsonMediaType);
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        int status = (int)response.StatusCode;
        if (status is >= 200 and < 300)
        {
            Volatile.Write(ref _respondedAt[change], Stopwatch.GetTimestamp());
            return new Outcome(status);
        }

        return new Outcome(status, await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Creates (or, against a broker that has them from an earlier run, replaces) the entities, with
    /// seq = -1 so nothing they held before can pass for a change of this run.</summary>
    /// <param name="attributes">More attributes of entity n, as JSON members ("name":{…}), or null.</param>
    public static async Task UpsertAsync(
        HttpClient client, Uri baseUri, string idPrefix, string type, int entities, Func<int, string?> attributes, CancellationToken cancellationToken)
    {
        var uri = new Uri(baseUri.AbsoluteUri.TrimEnd('/') + "/ngsi-ld/v1/entityOperations/upsert");
        const int batch = 1000;
        for (int first = 0; first < entities; first += batch)
        {
            var json = new StringBuilder("[");
            for (int n = first; n < Math.Min(entities, first + batch); n++)
            {
                json.Append(n == first ? "" : ",").Append(CultureInfo.InvariantCulture, $"{{\"id\":\"{idPrefix}{n}\",\"type\":\"{type}\",")
                    .Append("\"seq\":{\"type\":\"Property\",\"value\":-1}");
                if (attributes(n) is { } more)
                {
                    json.Append(',').Append(more);
                }

                json.Append('}');
            }

            using var content = new StringContent(json.Append(']').ToString(), Encoding.UTF8, JsonMediaType);
            using var response = await client.PostAsync(uri, content, cancellationToken).ConfigureAwait(false);
            if ((int)response.StatusCode is not (201 or 204))
            {
                string answer = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                throw new BenchFailure(string.Create(CultureInfo.InvariantCulture, $"creating the {type} entities failed: {(int)response.StatusCode} {answer}"));
            }
        }
    }
}
