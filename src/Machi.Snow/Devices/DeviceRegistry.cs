using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Machi.Snow.Ingestion;
using Machi.Snow.Storage;
using Microsoft.AspNetCore.WebUtilities;

namespace Machi.Snow.Devices;

/// <summary>
/// The registered GPS units and their tokens. A token is 32 random bytes (base64url); only its SHA-256 is stored, and
/// a presented token is compared with the stored hash in constant time. Units are cached; a unit registered by another
/// process on the same database (the simulator, the CLI) is found on its first report.
/// </summary>
internal sealed class DeviceRegistry(ISnowStore store, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, DeviceRecord> _cache = new(StringComparer.Ordinal);

    public async Task LoadAsync(CancellationToken ct)
    {
        foreach (var device in await store.DevicesAsync(ct).ConfigureAwait(false))
        {
            _cache[device.Id] = device;
        }
    }

    public IReadOnlyCollection<DeviceRecord> Cached => (IReadOnlyCollection<DeviceRecord>)_cache.Values;

    /// <summary>Registers a unit (or gives an existing one a new token) and returns the token, shown only this once.</summary>
    public async Task<string> RegisterAsync(string id, string? name, bool simulated, CancellationToken ct)
    {
        if (!OsmAndParser.IsDeviceId(id))
        {
            throw new ArgumentException("A device id is 1–64 letters, digits, '-', '_' or '.'.", nameof(id));
        }

        var token = NewToken();
        var existing = await store.FindDeviceAsync(id, ct).ConfigureAwait(false);
        var device = new DeviceRecord(id, string.IsNullOrWhiteSpace(name) ? existing?.Name ?? id : name.Trim(), Hash(token), simulated,
            existing?.CreatedAt ?? time.GetUtcNow());
        await store.SaveDeviceAsync(device, ct).ConfigureAwait(false);
        _cache[id] = device;
        return token;
    }

    /// <summary>The unit when the token is its own; else why not.</summary>
    public async Task<(DeviceRecord? Device, Rejection? Rejection)> AuthenticateAsync(string id, string? token, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(token))
        {
            return (null, new Rejection(RejectReason.MissingToken, "The unit's token is missing (token=… or Authorization: Bearer …)."));
        }

        var hash = Hash(token);
        if (_cache.TryGetValue(id, out var cached) && CryptographicOperations.FixedTimeEquals(cached.TokenHash, hash))
        {
            return (cached, null);
        }

        // Not cached, or the token may have been renewed elsewhere: ask the database once.
        var stored = await store.FindDeviceAsync(id, ct).ConfigureAwait(false);
        if (stored is null)
        {
            return (null, new Rejection(RejectReason.UnknownDevice, $"No unit '{id}' is registered; staff register units on /snow/operator or with 'machi snow device add'."));
        }

        _cache[id] = stored;
        return CryptographicOperations.FixedTimeEquals(stored.TokenHash, hash)
            ? (stored, null)
            : (null, new Rejection(RejectReason.InvalidToken, $"The token is not the one registered for unit '{id}'."));
    }

    public static string NewToken() => WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    public static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}
