using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenIddict.Server;
using OpenIddict.Validation;

namespace Machi.Trust.Keys;

/// <summary>Rotates the key ring while the server runs, and picks up keys another node rotated.</summary>
internal sealed class KeyRotationService(
    KeyRing ring,
    IOptionsMonitorCache<OpenIddictServerOptions> serverOptions,
    IOptionsMonitorCache<OpenIddictValidationOptions> validationOptions,
    IOptions<TrustOptions> options,
    TimeProvider time,
    ILogger<KeyRotationService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.KeyRotationCheckInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                if (await ring.RotateIfDueAsync(stoppingToken).ConfigureAwait(false))
                {
                    Reload();
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Trust: key rotation failed; the current keys stay in use");
            }
        }
    }

    /// <summary>The next request builds the OpenIddict options again, from the ring as stored now.</summary>
    internal void Reload()
    {
        serverOptions.TryRemove(Options.DefaultName);
        validationOptions.TryRemove(Options.DefaultName);
    }
}
