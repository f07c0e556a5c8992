using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Machi.Broker.Moving;

/// <summary>What is wrong with an archive or a target, said to the operator in one line (never a stack trace).</summary>
public sealed class MoveException(string message) : Exception(message);

/// <summary>One part of an archive as its manifest lists it: the file, its rows and its SHA-256.</summary>
public sealed record ArchivePart(string Name, long Rows, string Sha256)
{
    public string File => Name + ".jsonl";
}

/// <summary>
/// A city moved out of one backend and into another (<c>machi export</c> / <c>machi import</c>): a directory with one
/// JSON Lines file per part (a table of the broker or of Trust, the access log, the data-protection keys), one JSON
/// object a row with the table's own column names, and <c>manifest.json</c> naming the format version, the Machi
/// version that wrote it, and each part's row count and SHA-256. Byte columns are base64 strings, times as the
/// stores keep them (UTC ticks; ISO 8601 for Trust's). The manifest is written last, so a cut-off export has none.
/// </summary>
internal sealed class CityArchive
{
    public const string Format = "machi-city-archive";

    /// <summary>The layout version: an importer refuses an archive of another one.</summary>
    public const int FormatVersion = 1;

    public const string ManifestFile = "manifest.json";

    private CityArchive(string directory, JsonObject manifest, IReadOnlyList<ArchivePart> parts)
    {
        Directory = directory;
        Manifest = manifest;
        Parts = parts;
    }

    public string Directory { get; }

    public JsonObject Manifest { get; }

    public IReadOnlyList<ArchivePart> Parts { get; }

    /// <summary>Whether a name from an archive can name a file in one directory (no path, not hidden).</summary>
    public static bool IsPlainName(string name) => name.Length > 0 && name.IndexOfAny(['/', '\\']) < 0 && !name.StartsWith('.');

    /// <summary>The part named <paramref name="name"/>; an archive without it holds no such rows.</summary>
    public ArchivePart? Part(string name) => Parts.FirstOrDefault(p => p.Name == name);

    /// <summary>
    /// Opens an archive and checks it completely before anything is written: the manifest's format and version, then
    /// every part's row count and SHA-256 (the first that differs is named).
    /// </summary>
    public static async Task<CityArchive> OpenAsync(string directory, string machiVersion, CancellationToken cancellationToken)
    {
        var manifestPath = Path.Combine(directory, ManifestFile);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new MoveException($"no archive at {directory} (machi export --out writes one)");
        }

        if (!File.Exists(manifestPath))
        {
            throw new MoveException($"{directory} is not a complete city archive: {ManifestFile} is missing (an export that did not finish writes none)");
        }

        JsonObject manifest;
        try
        {
            manifest = JsonNode.Parse(await File.ReadAllTextAsync(manifestPath, cancellationToken).ConfigureAwait(false)) as JsonObject
                ?? throw new MoveException($"{manifestPath} is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new MoveException($"{manifestPath} is not valid JSON: {e.Message}");
        }

        if (manifest["format"]?.GetValueKind() != JsonValueKind.String || manifest["format"]!.GetValue<string>() != Format)
        {
            throw new MoveException($"{manifestPath} is not the manifest of a Machi city archive");
        }

        var version = manifest["formatVersion"] is JsonValue v && v.TryGetValue<int>(out var n) ? n : -1;
        if (version != FormatVersion)
        {
            throw new MoveException(
                $"the archive has format version {version} (written by Machi {manifest["machiVersion"]}); this Machi ({machiVersion}) reads version {FormatVersion}");
        }

        var parts = new List<ArchivePart>();
        foreach (var node in manifest["parts"] as JsonArray ?? [])
        {
            var part = new ArchivePart(
                node?["name"]?.GetValue<string>() ?? throw new MoveException("a part in the manifest has no name"),
                node["rows"]?.GetValue<long>() ?? 0,
                node["sha256"]?.GetValue<string>() ?? "");
            if (!IsPlainName(part.Name))
            {
                throw new MoveException($"the manifest names a part '{part.Name}' outside the archive");
            }

            var path = Path.Combine(directory, part.File);
            if (!File.Exists(path))
            {
                throw new MoveException($"part '{part.Name}' is missing ({part.File})");
            }

            var (sha256, rows) = await HashAsync(path, cancellationToken).ConfigureAwait(false);
            if (!string.Equals(sha256, part.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new MoveException($"part '{part.Name}' ({part.File}) does not match its checksum in the manifest: the archive was altered or damaged");
            }

            if (rows != part.Rows)
            {
                throw new MoveException($"part '{part.Name}' has {rows} rows, the manifest says {part.Rows}");
            }

            parts.Add(part);
        }

        return new CityArchive(directory, manifest, parts);
    }

    /// <summary>The rows of a part, in the order they were written (none when the archive has no such part).</summary>
    public IEnumerable<JsonObject> Read(string name)
    {
        if (Part(name) is not { } part)
        {
            yield break;
        }

        foreach (var line in File.ReadLines(Path.Combine(Directory, part.File), Encoding.UTF8))
        {
            if (line.Length > 0)
            {
                yield return JsonNode.Parse(line) as JsonObject ?? throw new MoveException($"part '{name}' holds a line that is not a JSON object");
            }
        }
    }

    private static async Task<(string Sha256, long Rows)> HashAsync(string path, CancellationToken cancellationToken)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        long rows = 0;
        await using var file = File.OpenRead(path);
        int read;
        while ((read = await file.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            sha.AppendData(buffer, 0, read);
            rows += buffer.AsSpan(0, read).Count((byte)'\n');
        }

        return (Convert.ToHexStringLower(sha.GetHashAndReset()), rows);
    }

    /// <summary>Writes an archive: parts one after another, then the manifest.</summary>
    internal sealed class Writer
    {
        private readonly string _directory;
        private readonly List<ArchivePart> _parts = [];

        private readonly string _machiVersion;

        private Writer(string directory, string machiVersion) => (_directory, _machiVersion) = (directory, machiVersion);

        /// <summary>A writer into <paramref name="directory"/>, which must not exist or be empty (an archive is never overwritten).</summary>
        public static Writer Create(string directory, string machiVersion)
        {
            if (File.Exists(directory) || (System.IO.Directory.Exists(directory) && System.IO.Directory.EnumerateFileSystemEntries(directory).Any()))
            {
                throw new MoveException($"{directory} already exists and is not empty: choose a new directory for the archive");
            }

            System.IO.Directory.CreateDirectory(directory);
            return new Writer(directory, machiVersion);
        }

        /// <summary>Writes one part: <paramref name="write"/> is called with a row writer and writes every row.</summary>
        public async Task PartAsync(string name, Func<PartWriter, Task> write)
        {
            var path = Path.Combine(_directory, name + ".jsonl");
            await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var rows = new PartWriter(file, sha);
            await write(rows).ConfigureAwait(false);
            await rows.FlushAsync().ConfigureAwait(false);
            await file.FlushAsync().ConfigureAwait(false);
            file.Flush(flushToDisk: true);
            _parts.Add(new ArchivePart(name, rows.Rows, Convert.ToHexStringLower(sha.GetHashAndReset())));
        }

        /// <summary>Writes the manifest (after every part): format, versions, where it came from, and the parts.</summary>
        public async Task CompleteAsync(string source, JsonObject extra)
        {
            var manifest = new JsonObject
            {
                ["format"] = Format,
                ["formatVersion"] = FormatVersion,
                ["machiVersion"] = _machiVersion,
                ["exportedAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
                ["source"] = source,
            };
            foreach (var (key, value) in extra)
            {
                manifest[key] = value?.DeepClone();
            }

            manifest["parts"] = new JsonArray([.. _parts.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name, ["rows"] = p.Rows, ["sha256"] = p.Sha256 })]);
            await File.WriteAllTextAsync(Path.Combine(_directory, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n").ConfigureAwait(false);
        }

        public IReadOnlyList<ArchivePart> Parts => _parts;
    }
}

/// <summary>Writes the rows of one part: one JSON object a line, hashed as it goes.</summary>
internal sealed class PartWriter : IDisposable
{
    private readonly System.IO.Stream _file;
    private readonly IncrementalHash _sha;
    private readonly ArrayBufferWriter<byte> _buffer = new(1 << 20);
    private readonly Utf8JsonWriter _json;

    internal PartWriter(System.IO.Stream file, IncrementalHash sha)
    {
        _file = file;
        _sha = sha;
        _json = new Utf8JsonWriter(_buffer);
    }

    public long Rows { get; private set; }

    /// <summary>Writes one row: <paramref name="write"/> writes the object's members.</summary>
    public async ValueTask RowAsync(Action<Utf8JsonWriter> write)
    {
        _json.WriteStartObject();
        write(_json);
        _json.WriteEndObject();
        _json.Flush();
        _json.Reset();
        _buffer.Write("\n"u8);
        Rows++;
        if (_buffer.WrittenCount >= 1 << 20)
        {
            await FlushAsync().ConfigureAwait(false);
        }
    }

    public void Dispose() => _json.Dispose();

    public async ValueTask FlushAsync()
    {
        var written = _buffer.WrittenMemory;
        _sha.AppendData(written.Span);
        await _file.WriteAsync(written).ConfigureAwait(false);
        _buffer.ResetWrittenCount();
    }
}
