namespace Machi.Bench.Load;

/// <summary>One closed-loop worker sending HTTP requests: each request from <c>next</c>, its whole response read.</summary>
internal sealed class HttpWorker(HttpClient client, Func<HttpRequestMessage> next, ExpectedStatus expected) : ILoadWorker
{
    private readonly byte[] _drain = new byte[16 * 1024];

    public async ValueTask<Outcome> ExecuteAsync(CancellationToken cancellationToken)
    {
        using var request = next();
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken)
            .ConfigureAwait(false);
        int status = (int)response.StatusCode;
        if (!expected.Contains(status))
        {
            string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            return new Outcome(status, string.IsNullOrWhiteSpace(body) ? "(empty body)" : body);
        }

        // The request is complete when its whole response has been read, as for any real client.
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            while (await stream.ReadAsync(_drain, cancellationToken).ConfigureAwait(false) > 0)
            {
            }
        }

        return new Outcome(status);
    }
}
