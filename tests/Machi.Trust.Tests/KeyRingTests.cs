using Machi.Trust.Keys;
using Machi.Trust.Storage;
using Machi.Trust.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Machi.Trust.Tests;

public sealed class KeyRingTests : IAsyncLifetime
{
    private readonly string _data = TempDirectory.Create("machi-keys-");
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
    private ServiceProvider _services = null!;
    private KeyRing _ring = null!;

    public async Task InitializeAsync()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Broker:DataDirectory"] = _data,
            ["Trust:KeyRotationInterval"] = "30.00:00:00",
            ["Trust:AccessTokenLifetime"] = "01:00:00",
            ["Trust:RefreshTokenLifetime"] = "14.00:00:00",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<TimeProvider>(_clock);
        services.AddTrustStore(configuration);
        _services = services.BuildServiceProvider();
        await TrustDatabase.MigrateAsync(_services, CancellationToken.None);
        _ring = new KeyRing(_services.GetRequiredService<IServiceScopeFactory>(), _services.GetRequiredService<IOptions<TrustOptions>>(), _clock, NullLogger<KeyRing>.Instance);
    }

    public async Task DisposeAsync()
    {
        await _services.DisposeAsync();
        TempDirectory.Delete(_data);
    }

    private IReadOnlyList<TrustKey> Signing() => [.. _ring.Load().Where(k => k.Use == TrustKey.Signing)];

    [Fact]
    public async Task The_first_start_makes_one_signing_and_one_encryption_key_and_a_restart_keeps_them()
    {
        Assert.True(await _ring.RotateIfDueAsync(CancellationToken.None));
        var first = _ring.Load();
        Assert.Equal([TrustKey.Encryption, TrustKey.Signing], first.Select(k => k.Use).Order());

        _clock.Advance(TimeSpan.FromDays(29));
        Assert.False(await _ring.RotateIfDueAsync(CancellationToken.None));
        Assert.Equal(first.Select(k => k.Id).Order(), _ring.Load().Select(k => k.Id).Order());
    }

    [Fact]
    public async Task After_the_interval_a_new_key_signs_the_old_stays_published_until_its_tokens_expired_then_is_deleted()
    {
        await _ring.RotateIfDueAsync(CancellationToken.None);
        var old = Assert.Single(Signing());

        _clock.Advance(TimeSpan.FromDays(30));
        Assert.True(await _ring.RotateIfDueAsync(CancellationToken.None));
        var both = Signing();
        Assert.Equal(2, both.Count);
        Assert.NotEqual(old.Id, both[0].Id);
        Assert.Equal(old.Id, both[1].Id);

        // Access tokens live an hour: an hour and a margin after the new key took over, the old one goes.
        _clock.Advance(TimeSpan.FromHours(1));
        Assert.False(await _ring.RotateIfDueAsync(CancellationToken.None));
        Assert.Equal(2, Signing().Count);
        _clock.Advance(TimeSpan.FromHours(1.5));
        Assert.True(await _ring.RotateIfDueAsync(CancellationToken.None));
        Assert.Equal(both[0].Id, Assert.Single(Signing()).Id);

        // Encryption keys protect refresh tokens, so the old one is kept for their 14 days.
        Assert.Equal(2, _ring.Load().Count(k => k.Use == TrustKey.Encryption));
    }

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        private DateTimeOffset _now = now;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
