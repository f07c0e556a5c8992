namespace Machi.Host.Home;

/// <summary>The landing page at <c>/</c> until the citizen portal replaces it.</summary>
internal static class HomeEndpoints
{
    private static readonly Lazy<string> Page = new(() =>
    {
        using var stream = typeof(HomeEndpoints).Assembly.GetManifestResourceStream("Machi.Host.Home.index.html")
            ?? throw new InvalidOperationException("The landing page resource is missing from the build.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    public static IEndpointRouteBuilder MapHome(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => TypedResults.Content(Page.Value, "text/html; charset=utf-8")).ExcludeFromDescription();
        return app;
    }
}
