using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Machi.Host.ApiDocs;

/// <summary>The OpenAPI 3.1 description (<c>/openapi/v1.json</c>) and the browsable reference (<c>/docs</c>).</summary>
internal static class ApiDocs
{
    public const string Title = "Machi city OS API";

    private const string Description = """
        Machi is an open-source city OS: an ETSI NGSI-LD context broker (the city's shared data) and the services that run on it. Personal data flows only after the resident opts in.

        Machi（まち）はオープンソースの都市OS（データ連携基盤）です。ETSI NGSI-LD コンテキストブローカーを中核に、その上で動く市民サービスを提供します。個人のデータは、本人が同意（オプトイン）した場合にのみ連携されます。
        """;

    public static IServiceCollection AddMachiApiDocs(this IServiceCollection services)
    {
        services.AddOpenApi(options =>
        {
            options.OpenApiVersion = OpenApiSpecVersion.OpenApi3_1;
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = Title,
                    Version = MachiVersion.Current,
                    Description = Description,
                };
                return Task.CompletedTask;
            });
        });
        return services;
    }

    public static IEndpointRouteBuilder MapApiDocs(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi("/openapi/{documentName}.json");

        // Air-gapped cities must be able to read the docs: the page loads only the script bundled in
        // Scalar.AspNetCore (served under /docs/), never fonts, AI agents or the hosted toolbar from elsewhere.
        app.MapScalarApiReference("/docs", options => options
            .WithTitle(Title)
            .WithOpenApiRoutePattern("/openapi/{documentName}.json")
            .AddDocument("v1", Title)
            .DisableDefaultFonts()
            .DisableAgent()
            .DisableMcp()
            .HideDeveloperTools());
        return app;
    }
}
