using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;

namespace Machi.Broker.Access;

/// <summary>
/// Where <see cref="SqliteAccessLog"/> stages the records requests append until its flusher writes them to the journal:
/// a file in shared memory (<c>/dev/shm</c>, tmpfs) mapped into the process. A record copied here is safe from a
/// crash of the process (kill -9): the file outlives it, and the next start reads the records back. Copying a record
/// costs a fraction of the <c>pwrite</c> to the journal it replaces (~1.5 µs of CPU a request: the file system's
/// per-write work), and tmpfs pages, never written back, are not write-protected again after each flush the way a
/// mapped file on disk is. Without <c>/dev/shm</c> the file sits beside the journal (correct, slower).
/// </summary>
/// <remarks>
/// The file starts with the journal's path (<see cref="HeaderLength"/> bytes: its UTF-8 length, then the text), so a
/// file whose data directory is gone (a killed server's, removed since) is recognised and deleted by the next log that
/// starts. The records follow, framed as in the journal (<see cref="AccessLogJournal"/>); the bytes after the last
/// record are zeros, so reading stops there. Whoever writes the staged records out to the journal zeroes them here (no
/// stale copies of erased residents' records stay in memory).
/// </remarks>
internal sealed unsafe class AccessLogStaging : IDisposable
{
    /// <summary>Room for ~3,000 records: ~100 ms of appends at 30,000 a second; the flusher writes out every 20 ms.</summary>
    public const int Capacity = (1 << 20) - HeaderLength;

    /// <summary>The journal's path before the records (one page).</summary>
    public const int HeaderLength = 4096;

    private const string SharedMemory = "/dev/shm";
    private const string Prefix = "machi-access-log-";
    private const string Suffix = ".staging";

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _bytes;

    /// <summary>
    /// Creates the file at <paramref name="path"/> anew (zeros after the path of <paramref name="journalPath"/>), readable
    /// by this user only (<c>/dev/shm</c> is shared by every user of the machine), mapped for writing.
    /// </summary>
    public AccessLogStaging(string path, string journalPath)
    {
        if (new FileInfo(path).LinkTarget is not null)
        {
            throw new IOException($"The access log's staging file {path} is a symbolic link; it is not followed");
        }

        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite | FileShare.Delete };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new FileStream(path, options);
        try
        {
            var header = new byte[HeaderLength];
            var journal = Encoding.UTF8.GetBytes(System.IO.Path.GetFullPath(journalPath));
            if (journal.Length > HeaderLength - 4)
            {
                throw new IOException($"The access log's path is too long for its staging file: {journalPath}");
            }

            BinaryPrimitives.WriteInt32LittleEndian(header, journal.Length);
            journal.CopyTo(header, 4);
            file.Write(header);
            file.SetLength(HeaderLength + Capacity);
            _map = MemoryMappedFile.CreateFromFile(file, null, HeaderLength + Capacity, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            file.Dispose();
            throw;
        }

        _view = _map.CreateViewAccessor(HeaderLength, Capacity, MemoryMappedFileAccess.ReadWrite);
        byte* start = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        _bytes = start + _view.PointerOffset;
    }

    /// <summary>The mapped bytes (valid until disposed).</summary>
    public Span<byte> Bytes => new(_bytes, Capacity);

    /// <summary>
    /// The staging file of the journal at <paramref name="journalPath"/>: in <c>/dev/shm</c>, named after the journal's
    /// full path (one per data directory), or beside the journal where there is no <c>/dev/shm</c>.
    /// </summary>
    public static string PathFor(string journalPath)
    {
        var full = System.IO.Path.GetFullPath(journalPath);
        if (!OperatingSystem.IsLinux() || !Directory.Exists(SharedMemory))
        {
            return full + ".staging";
        }

        var name = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(full)).AsSpan(0, 8));
        return System.IO.Path.Combine(SharedMemory, Prefix + name + Suffix);
    }

    /// <summary>
    /// Deletes the staging files in <c>/dev/shm</c> whose journal's directory no longer exists (a server killed, its data
    /// directory removed since: nothing is left to recover into). Files of data directories that exist are kept.
    /// </summary>
    public static void DeleteOrphans()
    {
        if (!Directory.Exists(SharedMemory))
        {
            return;
        }

        foreach (var file in Directory.EnumerateFiles(SharedMemory, Prefix + "*" + Suffix))
        {
            try
            {
                if (JournalOf(file) is { } journal && !Directory.Exists(System.IO.Path.GetDirectoryName(journal)))
                {
                    File.Delete(file);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another user's, or gone meanwhile.
            }
        }
    }

    /// <summary>The journal path a staging file names, or null when it names none.</summary>
    private static string? JournalOf(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var header = new byte[HeaderLength];
        if (stream.ReadAtLeast(header, HeaderLength, throwOnEndOfStream: false) < HeaderLength)
        {
            return null;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        return length is > 0 and <= HeaderLength - 4 ? Encoding.UTF8.GetString(header, 4, length) : null;
    }

    /// <summary>The staged bytes a file holds (read without mapping it: a running log's file is left alone); empty when there is none.</summary>
    public static byte[] Read(string path)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            file.Position = HeaderLength;
            var bytes = new byte[Math.Clamp(file.Length - HeaderLength, 0, Capacity)];
            return bytes[..file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false)];
        }
        catch (FileNotFoundException)
        {
            return [];
        }
    }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
