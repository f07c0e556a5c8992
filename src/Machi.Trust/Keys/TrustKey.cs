namespace Machi.Trust.Keys;

/// <summary>One RSA key of the key ring: it signs tokens (<c>sig</c>) or encrypts codes and refresh tokens (<c>enc</c>).</summary>
internal sealed class TrustKey
{
    public const string Signing = "sig";
    public const string Encryption = "enc";

    /// <summary>The JWK <c>kid</c>.</summary>
    public string Id { get; set; } = "";

    public string Use { get; set; } = Signing;

    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The private key, PKCS#8 PEM.</summary>
    public string Pem { get; set; } = "";
}
