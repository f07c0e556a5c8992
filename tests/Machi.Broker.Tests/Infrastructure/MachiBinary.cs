using System.Reflection;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>Finds the built <c>machi.dll</c> of the same configuration as these tests, and the dotnet host to run it.</summary>
public static class MachiBinary
{
    private static readonly Lazy<string> DllPath = new(Locate);

    /// <summary>Absolute path of machi.dll; MACHI_DLL overrides the search.</summary>
    public static string Dll => DllPath.Value;

    /// <summary>The dotnet executable running these tests (so the child uses the same runtime).</summary>
    public static string Dotnet
    {
        get
        {
            var current = Environment.ProcessPath;
            if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
            {
                return current;
            }

            return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
                ? host
                : "dotnet";
        }
    }

    private static string Locate()
    {
        if (Environment.GetEnvironmentVariable("MACHI_DLL") is { Length: > 0 } overridden)
        {
            return File.Exists(overridden)
                ? Path.GetFullPath(overridden)
                : throw new FileNotFoundException($"MACHI_DLL points to '{overridden}', which does not exist.");
        }

        // The test build copies machi.dll with its runtimeconfig and deps next to the test assembly.
        var beside = Path.Combine(AppContext.BaseDirectory, "machi.dll");
        if (File.Exists(beside) && File.Exists(Path.Combine(AppContext.BaseDirectory, "machi.runtimeconfig.json")))
        {
            return beside;
        }

        var configuration = typeof(MachiBinary).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration
            ?? "Release";
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Machi.slnx")))
            {
                var built = Path.Combine(dir.FullName, "src", "Machi.Host", "bin", configuration, "net10.0", "machi.dll");
                return File.Exists(built)
                    ? built
                    : throw new FileNotFoundException($"machi.dll is not built at '{built}': build the solution in {configuration} first.");
            }
        }

        throw new FileNotFoundException($"Could not find machi.dll beside '{AppContext.BaseDirectory}' or in the repository.");
    }
}
