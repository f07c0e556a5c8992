using Machi.Trust.Accounts;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Machi.Trust.Tests;

public sealed class PasswordHasherTests
{
    private static Argon2PasswordHasher Hasher(int memory = 19 * 1024, int iterations = 2) =>
        new(Options.Create(new TrustOptions { PasswordHashMemoryKiB = memory, PasswordHashIterations = iterations }));

    [Fact]
    public void A_hash_is_argon2id_salted_and_verifies_only_the_same_password()
    {
        var hasher = Hasher();
        var user = new MachiUser();

        var hash = hasher.HashPassword(user, "會津の雪道 2026");

        Assert.StartsWith("$argon2id$v=19$m=19456,t=2,p=1$", hash, StringComparison.Ordinal);
        Assert.NotEqual(hash, hasher.HashPassword(user, "會津の雪道 2026"));
        Assert.Equal(PasswordVerificationResult.Success, hasher.VerifyHashedPassword(user, hash, "會津の雪道 2026"));
        Assert.Equal(PasswordVerificationResult.Failed, hasher.VerifyHashedPassword(user, hash, "會津の雪道 2025"));
    }

    [Fact]
    public void A_hash_made_with_a_lower_cost_verifies_and_asks_to_be_rehashed()
    {
        var user = new MachiUser();
        var weak = Hasher(memory: 1024, iterations: 1).HashPassword(user, "password-1");

        Assert.Equal(PasswordVerificationResult.SuccessRehashNeeded, Hasher().VerifyHashedPassword(user, weak, "password-1"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("AQAAAAIAAYagAAAAE")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$")]
    [InlineData("$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA")]
    [InlineData("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA")]
    public void A_malformed_or_unbounded_hash_fails_without_throwing(string stored)
    {
        Assert.Equal(PasswordVerificationResult.Failed, Hasher().VerifyHashedPassword(new MachiUser(), stored, "anything"));
    }
}
