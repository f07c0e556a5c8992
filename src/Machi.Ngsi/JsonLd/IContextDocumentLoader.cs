namespace Machi.Ngsi.JsonLd;

/// <summary>Fetches remote JSON-LD @context documents (the seam tests replace).</summary>
public interface IContextDocumentLoader
{
    /// <summary>
    /// The raw bytes of the document at <paramref name="url"/>. A document that cannot be fetched throws
    /// <c>NgsiException(LdContextNotAvailable)</c> saying why; checking the bytes is the caller's job.
    /// </summary>
    ValueTask<ReadOnlyMemory<byte>> LoadAsync(Uri url, CancellationToken cancellationToken);
}
