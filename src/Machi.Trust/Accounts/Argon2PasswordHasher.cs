using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Konscious.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Machi.Trust.Accounts;

/// <summary>
/// Argon2id password hashes (RFC 9106), stored as <c>$argon2id$v=19$m=…,t=…,p=…$salt$hash</c> (PHC string format,
/// unpadded base64). A hash made with lower costs than configured verifies and asks Identity to rehash it.
/// </summary>
internal sealed class Argon2PasswordHasher(IOptions<TrustOptions> options) : IPasswordHasher<MachiUser>
{
    private const int SaltBytes = 16;
    private const int HashBytes = 32;

    public string HashPassword(MachiUser user, string password)
    {
        ArgumentNullException.ThrowIfNull(password);
        var settings = options.Value;
        var cost = new Cost(settings.PasswordHashMemoryKiB, settings.PasswordHashIterations, settings.PasswordHashParallelism);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Derive(password, salt, cost, HashBytes);
        return string.Create(CultureInfo.InvariantCulture,
            $"$argon2id$v=19$m={cost.MemoryKiB},t={cost.Iterations},p={cost.Parallelism}${Encode(salt)}${Encode(hash)}");
    }

    public PasswordVerificationResult VerifyHashedPassword(MachiUser user, string hashedPassword, string providedPassword)
    {
        ArgumentNullException.ThrowIfNull(hashedPassword);
        ArgumentNullException.ThrowIfNull(providedPassword);
        if (!TryParse(hashedPassword, out var cost, out var salt, out var expected))
        {
            return PasswordVerificationResult.Failed;
        }

        var actual = Derive(providedPassword, salt, cost, expected.Length);
        if (!CryptographicOperations.FixedTimeEquals(actual, expected))
        {
            return PasswordVerificationResult.Failed;
        }

        var settings = options.Value;
        return cost.MemoryKiB < settings.PasswordHashMemoryKiB || cost.Iterations < settings.PasswordHashIterations
            ? PasswordVerificationResult.SuccessRehashNeeded
            : PasswordVerificationResult.Success;
    }

    private static byte[] Derive(string password, byte[] salt, Cost cost, int length)
    {
        using var argon2 = new Argon2id(Encoding.UTF8.GetBytes(password))
        {
            Salt = salt,
            MemorySize = cost.MemoryKiB,
            Iterations = cost.Iterations,
            DegreeOfParallelism = cost.Parallelism,
        };
        return argon2.GetBytes(length);
    }

    internal static bool TryParse(string encoded, out Cost cost, out byte[] salt, out byte[] hash)
    {
        cost = default;
        salt = hash = [];
        var parts = encoded.Split('$');
        if (parts.Length != 6 || parts[0].Length != 0 || parts[1] != "argon2id" || parts[2] != "v=19")
        {
            return false;
        }

        int m = 0, t = 0, p = 0;
        foreach (var setting in parts[3].Split(','))
        {
            if (setting.Length < 3 || setting[1] != '='
                || !int.TryParse(setting.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            switch (setting[0])
            {
                case 'm': m = value; break;
                case 't': t = value; break;
                case 'p': p = value; break;
                default: return false;
            }
        }

        // Bounds keep a forged hash from making verification allocate gigabytes or spin for minutes.
        if (m is < 8 or > 1024 * 1024 || t is < 1 or > 64 || p is < 1 or > 16)
        {
            return false;
        }

        try
        {
            salt = Decode(parts[4]);
            hash = Decode(parts[5]);
        }
        catch (FormatException)
        {
            return false;
        }

        cost = new Cost(m, t, p);
        return salt.Length >= 8 && hash.Length >= 16;
    }

    private static string Encode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=');

    private static byte[] Decode(string text) => Convert.FromBase64String(text.PadRight(text.Length + ((4 - (text.Length % 4)) % 4), '='));

    internal readonly record struct Cost(int MemoryKiB, int Iterations, int Parallelism);
}
