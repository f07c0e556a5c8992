using System.Buffers;
using System.Net.Http.Headers;
using Machi.Ngsi.Errors;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// Fetches @context documents over http(s) with a timeout and a size limit, reading the body as a stream so an
/// oversized or endless document costs no more than the limit.
/// </summary>
public sealed class HttpContextDocumentLoader(HttpClient httpClient, LdContextOptions options) : IContextDocumentLoader
{
    private static readonly MediaTypeWithQualityHeaderValue JsonLd = new("application/ld+json");
    private static readonly MediaTypeWithQualityHeaderValue Json = new("application/json", 0.9);

    public async ValueTask<ReadOnlyMemory<byte>> LoadAsync(Uri url, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            throw NotAvailable(url, "only http and https URLs can be fetched");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.FetchTimeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Accept.Add(JsonLd);
            request.Headers.Accept.Add(Json);
            using var response = await httpClient.SendAsync(
                request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                throw NotAvailable(url, $"the server answered {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            if (response.Content.Headers.ContentLength > options.MaxDocumentBytes)
            {
                throw TooLarge(url);
            }

            var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            await using (stream)
            {
                return await ReadLimitedAsync(url, stream, timeout.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw NotAvailable(url, $"no complete answer within {options.FetchTimeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException e)
        {
            throw NotAvailable(url, e.Message);
        }
        catch (IOException e)
        {
            throw NotAvailable(url, e.Message);
        }
    }

    private async ValueTask<ReadOnlyMemory<byte>> ReadLimitedAsync(
        Uri url,
        Stream stream,
        CancellationToken cancellationToken)
    {
        using var document = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                if (document.Length + read > options.MaxDocumentBytes)
                {
                    throw TooLarge(url);
                }

                document.Write(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return document.ToArray();
    }

    private NgsiException TooLarge(Uri url) =>
        NotAvailable(url, $"the document is larger than the {options.MaxDocumentBytes} bytes allowed");

    private static NgsiException NotAvailable(Uri url, string reason) =>
        new(NgsiErrorType.LdContextNotAvailable, $"The @context at '{url}' could not be retrieved: {reason}");
}
