namespace Machi.Portal.Procedures;

/// <summary>
/// What an uploaded file really is, from its first bytes; the name and type the browser sent are never trusted.
/// </summary>
internal static class FileTypes
{
    public const string Pdf = "application/pdf";
    public const string Jpeg = "image/jpeg";
    public const string Png = "image/png";

    public static IReadOnlyList<string> Allowed { get; } = [Pdf, Jpeg, Png];

    private static ReadOnlySpan<byte> JpegMagic => [0xFF, 0xD8, 0xFF];

    private static ReadOnlySpan<byte> PngMagic => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static string? Sniff(ReadOnlySpan<byte> head)
    {
        if (head.StartsWith("%PDF-"u8))
        {
            return Pdf;
        }

        if (head.StartsWith(JpegMagic))
        {
            return Jpeg;
        }

        if (head.StartsWith(PngMagic))
        {
            return Png;
        }

        return null;
    }

    public static string Extension(string contentType) => contentType switch
    {
        Pdf => ".pdf",
        Jpeg => ".jpg",
        Png => ".png",
        _ => ".bin",
    };

    public static string Label(string contentType) => contentType switch
    {
        Pdf => "PDF",
        Jpeg => "JPEG",
        Png => "PNG",
        _ => contentType,
    };
}
