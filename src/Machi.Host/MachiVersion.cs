using System.Reflection;

namespace Machi.Host;

internal static class MachiVersion
{
    /// <summary>The informational version, e.g. "0.1.0+3f2a…" (the suffix is the commit the build came from).</summary>
    public static string Current { get; } =
        typeof(MachiVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(MachiVersion).Assembly.GetName().Version?.ToString()
        ?? "0.0.0";
}
