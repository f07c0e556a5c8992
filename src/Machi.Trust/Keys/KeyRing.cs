using System.Security.Cryptography;
using Machi.Trust.Storage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Server;

namespace Machi.Trust.Keys;

/// <summary>
/// The provider's RSA keys, kept in the database so every node and every restart signs with the same ones. A new key
/// is made when the newest is older than the rotation interval; a superseded key stays published (JWKS) and usable for
/// validation and decryption until everything it protected has expired, then it is deleted.
/// </summary>
internal sealed class KeyRing(IServiceScopeFactory scopes, IOptions<TrustOptions> options, TimeProvider time, ILogger<KeyRing> logger)
{
    private static readonly TimeSpan Margin = TimeSpan.FromHours(1);
    private readonly Lock _gate = new();
    private IReadOnlyList<TrustKey> _loaded = [];

    /// <summary>The keys the OpenIddict options were last built from.</summary>
    public IReadOnlyList<TrustKey> Loaded
    {
        get
        {
            lock (_gate)
            {
                return _loaded;
            }
        }
    }

    /// <summary>
    /// Adds a key for each use when due and deletes retired ones. True when the stored ring now differs from
    /// <see cref="Loaded"/> (this node or another rotated), so the caller rebuilds the options.
    /// </summary>
    public async Task<bool> RotateIfDueAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TrustDbContext>();
        var keys = await db.Keys.ToListAsync(cancellationToken).ConfigureAwait(false);
        var settings = options.Value;
        var now = time.GetUtcNow();
        foreach (var (use, protects) in new[]
                 {
                     (TrustKey.Signing, Max(settings.AccessTokenLifetime, settings.IdentityTokenLifetime)),
                     (TrustKey.Encryption, settings.RefreshTokenLifetime),
                 })
        {
            var ofUse = keys.Where(k => k.Use == use).OrderBy(k => k.CreatedAt).ToList();
            if (ofUse.Count == 0 || now - ofUse[^1].CreatedAt >= settings.KeyRotationInterval)
            {
                var key = NewKey(use, now);
                db.Keys.Add(key);
                ofUse.Add(key);
                logger.LogInformation("Trust: new {Use} key {KeyId}", use, key.Id);
            }

            // A key is superseded when its successor was made; what it protected expires at most `protects` later.
            for (var i = 0; i < ofUse.Count - 1; i++)
            {
                if (now - ofUse[i + 1].CreatedAt > protects + Margin)
                {
                    db.Keys.Remove(ofUse[i]);
                    logger.LogInformation("Trust: retired {Use} key {KeyId}", use, ofUse[i].Id);
                }
            }
        }

        await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
        var stored = await db.Keys.AsNoTracking().Select(k => k.Id).ToListAsync(cancellationToken).ConfigureAwait(false);
        return !stored.Order(StringComparer.Ordinal).SequenceEqual(Loaded.Select(k => k.Id).Order(StringComparer.Ordinal), StringComparer.Ordinal);
    }

    /// <summary>Reads the stored keys, newest first, and remembers them as <see cref="Loaded"/>.</summary>
    public IReadOnlyList<TrustKey> Load()
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<TrustDbContext>();
        var keys = db.Keys.AsNoTracking().ToList().OrderByDescending(k => k.CreatedAt).ToList();
        lock (_gate)
        {
            _loaded = keys;
        }

        return keys;
    }

    internal static TrustKey NewKey(string use, DateTimeOffset now)
    {
        using var rsa = RSA.Create(2048);
        return new TrustKey
        {
            Id = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(16)),
            Use = use,
            CreatedAt = now,
            Pem = rsa.ExportPkcs8PrivateKeyPem(),
        };
    }

    internal static RsaSecurityKey SecurityKey(TrustKey key)
    {
        var rsa = RSA.Create();
        rsa.ImportFromPem(key.Pem);
        return new RsaSecurityKey(rsa) { KeyId = key.Id };
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>Gives OpenIddict the ring's keys, newest first (OpenIddict signs and encrypts with the first).</summary>
    internal sealed class ServerSetup(KeyRing ring) : IConfigureOptions<OpenIddictServerOptions>
    {
        public void Configure(OpenIddictServerOptions options)
        {
            foreach (var key in ring.Load())
            {
                if (key.Use == TrustKey.Signing)
                {
                    options.SigningCredentials.Add(new SigningCredentials(SecurityKey(key), SecurityAlgorithms.RsaSha256));
                }
                else
                {
                    options.EncryptionCredentials.Add(new EncryptingCredentials(
                        SecurityKey(key), SecurityAlgorithms.RsaOAEP, SecurityAlgorithms.Aes256CbcHmacSha512));
                }
            }
        }
    }
}
