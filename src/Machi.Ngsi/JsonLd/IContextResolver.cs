using System.Text.Json.Nodes;

namespace Machi.Ngsi.JsonLd;

/// <summary>STUB until the JSON-LD work lands.</summary>
public interface IContextResolver
{
    ValueTask<LdContext> ResolveAsync(JsonNode? contextValue, CancellationToken cancellationToken);

    ValueTask<LdContext> ResolveLinkAsync(string url, CancellationToken cancellationToken);
}
