using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Machi.Portal.Storage;

namespace Machi.Portal.Procedures;

/// <summary>
/// Attachment files under DATA/attachments, each under a random name with no extension: a user's file name or type
/// never reaches the file system or a response header.
/// </summary>
internal sealed class AttachmentStore(IOptions<PortalOptions> options)
{
    private string Directory => options.Value.AttachmentDirectory;

    public long MaxBytes => options.Value.MaxAttachmentBytes;

    /// <summary>The problem with <paramref name="file"/> for <paramref name="slot"/>, or its sniffed type.</summary>
    public async Task<(string? ContentType, FieldError? Error)> CheckAsync(AttachmentDefinition slot, IFormFile? file, CancellationToken cancellationToken)
    {
        if (file is null || file.Length == 0)
        {
            return (null, slot.Required ? new FieldError(slot.Name, "v_file_required") : null);
        }

        if (file.Length > MaxBytes)
        {
            return (null, new FieldError(slot.Name, "v_file_too_large", Megabytes(MaxBytes)));
        }

        var head = new byte[8];
        await using var stream = file.OpenReadStream();
        var read = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        var allowed = slot.Types is { Count: > 0 } types ? types : FileTypes.Allowed;
        return FileTypes.Sniff(head.AsSpan(0, read)) is { } type && allowed.Contains(type)
            ? (type, null)
            : (null, new FieldError(slot.Name, "v_file_type", string.Join(", ", allowed.Select(FileTypes.Label))));
    }

    /// <summary>Writes the file durably (flushed to disk before this returns) and returns its metadata.</summary>
    public async Task<Attachment> SaveAsync(string field, IFormFile file, string contentType, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var path = Path.Combine(Directory, id);
        var temporary = path + ".part";
        byte[] hash;
        await using (var target = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, FileOptions.Asynchronous))
        {
            await using var source = file.OpenReadStream();
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[81920];
            int n;
            while ((n = await source.ReadAsync(buffer, cancellationToken)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await target.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
            }

            await target.FlushAsync(cancellationToken);
            target.Flush(flushToDisk: true);
            hash = sha.GetHashAndReset();
        }

        File.Move(temporary, path);
        var name = Path.GetFileName(file.FileName ?? "");
        return new Attachment(id, 0, field, name.Length > 200 ? name[..200] : name, contentType, file.Length, Convert.ToHexStringLower(hash), id);
    }

    public void Delete(string storedName)
    {
        var path = PathOf(storedName);
        if (path is not null)
        {
            File.Delete(path);
        }
    }

    public Stream? Open(string storedName) => PathOf(storedName) is { } path && File.Exists(path) ? File.OpenRead(path) : null;

    private string? PathOf(string storedName) =>
        storedName.Length == 32 && storedName.All(char.IsAsciiHexDigitLower) ? Path.Combine(Directory, storedName) : null;

    private static string Megabytes(long bytes) => (bytes / (1024 * 1024)).ToString(System.Globalization.CultureInfo.InvariantCulture) + " MB";
}
