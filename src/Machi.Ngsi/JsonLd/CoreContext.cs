using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Machi.Ngsi.JsonLd;

/// <summary>
/// The NGSI-LD core @context, embedded in the assembly: every published core context URL (v1.3 … v1.9 and the
/// unversioned one) means this context, so none of them is ever fetched.
/// </summary>
internal static partial class CoreContext
{
    /// <summary>The URL the broker gives for the core context in responses.</summary>
    public const string Url = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld";

    /// <summary>The local identifier the core context is listed under in /jsonldContexts.</summary>
    public const string LocalId = "ngsi-ld-core-context-v1.9";

    public const string DefaultVocab = "https://uri.etsi.org/ngsi-ld/default-context/";

    private const string ResourceName = "Machi.Ngsi.Contexts.ngsi-ld-core-context-v1.9.jsonld";

    /// <summary>The embedded document, as served by GET /jsonldContexts/{localId}.</summary>
    public static string DocumentJson { get; } = ReadResource();

    /// <summary>The document's @context object.</summary>
    public static JsonElement LocalContext { get; } =
        JsonSerializer.Deserialize<JsonElement>(DocumentJson).GetProperty("@context");

    public static LdTermTable Terms { get; } = LdContextProcessor.ProcessStandalone(LocalContext);

    public static bool IsCoreUrl(string url) => CoreUrlPattern().IsMatch(url);

    private static string ReadResource()
    {
        using var stream = typeof(CoreContext).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"The embedded resource {ResourceName} is missing");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(
        @"^https?://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context(-v\d+\.\d+(\.\d+)?)?\.jsonld$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex CoreUrlPattern();
}
