using System.Net;
using System.Net.Sockets;
using System.Text;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;

namespace Machi.Ngsi.Tests.JsonLd;

/// <summary>Fetching @context documents over real HTTP from a small server on 127.0.0.1.</summary>
public sealed class HttpContextDocumentLoaderTests : IAsyncLifetime
{
    private const string VehicleDocument = """
        { "@context": { "brandName": "http://example.org/vehicle/brandName" } }
        """;

    private readonly ContextServer _server = new();
    private readonly HttpClient _http = new();

    public Task InitializeAsync() => _server.StartAsync();

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task A_context_served_over_http_is_fetched_with_json_ld_accept_headers()
    {
        var loader = new HttpContextDocumentLoader(_http, new LdContextOptions());

        var document = await loader.LoadAsync(_server.Url("/vehicle.jsonld"), CancellationToken.None);

        Assert.Equal(VehicleDocument, Encoding.UTF8.GetString(document.Span));
        Assert.StartsWith("application/ld+json", _server.LastAccept, StringComparison.Ordinal);
        Assert.Contains("application/json", _server.LastAccept, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_link_header_url_on_a_real_server_resolves_and_is_fetched_once()
    {
        var options = new LdContextOptions();
        var registry = new ContextRegistry(
            new InMemoryHostedContextStore(), new HttpContextDocumentLoader(_http, options), options, TimeProvider.System);
        var resolver = new ContextResolver(registry, options, TimeProvider.System);
        var url = _server.Url("/vehicle.jsonld").ToString();

        var first = await resolver.ResolveLinkAsync(url, CancellationToken.None);
        var second = await resolver.ResolveLinkAsync(url, CancellationToken.None);

        Assert.Equal("http://example.org/vehicle/brandName", first.ExpandTerm("brandName"));
        Assert.Same(first, second);
        Assert.Equal(1, _server.Requests("/vehicle.jsonld"));
    }

    [Fact]
    public async Task A_missing_document_is_LdContextNotAvailable_with_the_status()
    {
        var loader = new HttpContextDocumentLoader(_http, new LdContextOptions());

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => loader.LoadAsync(_server.Url("/missing.jsonld"), CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Contains("404", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_does_not_answer_in_time_is_LdContextNotAvailable()
    {
        var loader = new HttpContextDocumentLoader(
            _http, new LdContextOptions { FetchTimeout = TimeSpan.FromMilliseconds(200) });

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => loader.LoadAsync(_server.Url("/slow.jsonld"), CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Contains("within 0.2 s", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_caller_giving_up_is_a_cancellation_not_an_error()
    {
        var loader = new HttpContextDocumentLoader(_http, new LdContextOptions());
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => loader.LoadAsync(_server.Url("/slow.jsonld"), cancellation.Token).AsTask());
    }

    [Theory]
    [InlineData("/huge-streamed.jsonld")]
    [InlineData("/huge-declared.jsonld")]
    public async Task A_document_over_the_size_limit_is_refused_without_reading_all_of_it(string path)
    {
        var loader = new HttpContextDocumentLoader(_http, new LdContextOptions { MaxDocumentBytes = 1024 });

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => loader.LoadAsync(_server.Url(path), CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Contains("larger than the 1024 bytes", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_web_page_instead_of_a_context_is_LdContextNotAvailable_through_the_resolver()
    {
        var options = new LdContextOptions();
        var registry = new ContextRegistry(
            new InMemoryHostedContextStore(), new HttpContextDocumentLoader(_http, options), options, TimeProvider.System);
        var resolver = new ContextResolver(registry, options, TimeProvider.System);

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => resolver.ResolveLinkAsync(_server.Url("/page.html").ToString(), CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
        Assert.Contains("not valid JSON", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_closed_port_is_LdContextNotAvailable()
    {
        var loader = new HttpContextDocumentLoader(_http, new LdContextOptions());
        var closed = new Uri($"http://127.0.0.1:{ContextServer.FreePort()}/vehicle.jsonld");

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => loader.LoadAsync(closed, CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
    }

    [Fact]
    public async Task Only_http_and_https_urls_are_fetched()
    {
        var loader = new HttpContextDocumentLoader(_http, new LdContextOptions());

        var error = await Assert.ThrowsAsync<NgsiException>(
            () => loader.LoadAsync(new Uri("file:///etc/hostname"), CancellationToken.None).AsTask());

        Assert.Equal(NgsiErrorType.LdContextNotAvailable, error.Type);
    }

    /// <summary>An HttpListener on a free loopback port serving a few fixed answers.</summary>
    private sealed class ContextServer : IAsyncDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly CancellationTokenSource _stopping = new();
        private readonly Dictionary<string, int> _requests = new(StringComparer.Ordinal);
        private readonly Lock _lock = new();
        private Task _loop = Task.CompletedTask;
        private int _port;

        public string LastAccept { get; private set; } = "";

        public static int FreePort()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        public Uri Url(string path) => new($"http://127.0.0.1:{_port}{path}");

        public int Requests(string path)
        {
            lock (_lock)
            {
                return _requests.GetValueOrDefault(path);
            }
        }

        public Task StartAsync()
        {
            _port = FreePort();
            _listener.Prefixes.Add($"http://127.0.0.1:{_port}/");
            _listener.Start();
            _loop = Task.Run(AcceptAsync);
            return Task.CompletedTask;
        }

        public async ValueTask DisposeAsync()
        {
            await _stopping.CancelAsync();
            _listener.Close();
            await _loop;
            _stopping.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (!_stopping.IsCancellationRequested)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(() => AnswerAsync(context));
            }
        }

        private async Task AnswerAsync(HttpListenerContext context)
        {
            var path = context.Request.Url!.AbsolutePath;
            lock (_lock)
            {
                _requests[path] = _requests.GetValueOrDefault(path) + 1;
                LastAccept = context.Request.Headers["Accept"] ?? "";
            }

            var response = context.Response;
            try
            {
                switch (path)
                {
                    case "/vehicle.jsonld":
                        await WriteAsync(response, 200, "application/ld+json", VehicleDocument);
                        break;
                    case "/page.html":
                        await WriteAsync(response, 200, "text/html", "<html><body>Parking map</body></html>");
                        break;
                    case "/slow.jsonld":
                        await Task.Delay(TimeSpan.FromSeconds(10), _stopping.Token);
                        await WriteAsync(response, 200, "application/ld+json", VehicleDocument);
                        break;
                    case "/huge-declared.jsonld":
                        response.ContentLength64 = 10 * 1024 * 1024;
                        response.StatusCode = 200;
                        await response.OutputStream.WriteAsync(new byte[4096], _stopping.Token);
                        break;
                    case "/huge-streamed.jsonld":
                        response.SendChunked = true;
                        response.StatusCode = 200;
                        var chunk = Encoding.UTF8.GetBytes(new string(' ', 4096));
                        for (var i = 0; i < 256; i++)
                        {
                            await response.OutputStream.WriteAsync(chunk, _stopping.Token);
                        }

                        break;
                    default:
                        await WriteAsync(response, 404, "text/plain", "not found");
                        break;
                }

                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException or OperationCanceledException
                or ObjectDisposedException)
            {
                // The client gave up (timeout or size limit) or the server is stopping.
                response.Abort();
            }
        }

        private async Task WriteAsync(HttpListenerResponse response, int status, string contentType, string body)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            response.StatusCode = status;
            response.ContentType = contentType;
            response.ContentLength64 = bytes.Length;
            await response.OutputStream.WriteAsync(bytes, _stopping.Token);
        }
    }
}
