using Machi.Trust.Accounts;
using Machi.Trust.Clients;
using Machi.Trust.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Machi.Trust;

/// <summary>
/// Account and client administration on the database file directly, for <c>machi user add</c> and
/// <c>machi client add</c>: works with the server stopped, and beside a running one (SQLite waits for its lock).
/// </summary>
public static class TrustAdmin
{
    /// <summary>Registers a client and returns its credentials. Throws <see cref="ArgumentException"/> on bad input.</summary>
    public static async Task<ClientCredentials> AddClientAsync(IConfiguration configuration, ClientRequest request, CancellationToken cancellationToken)
    {
        await using var services = await OpenAsync(configuration, cancellationToken).ConfigureAwait(false);
        await using var scope = services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<ClientRegistry>().CreateAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Creates an account with a verified e-mail and returns its subject id. Throws <see cref="ArgumentException"/> on bad input.</summary>
    public static async Task<string> AddUserAsync(
        IConfiguration configuration, string role, string email, string password, CancellationToken cancellationToken)
    {
        await using var services = await OpenAsync(configuration, cancellationToken).ConfigureAwait(false);
        await using var scope = services.CreateAsyncScope();
        var (user, errors) = await scope.ServiceProvider.GetRequiredService<AccountService>()
            .CreateAsync(role, email, password, emailConfirmed: true).ConfigureAwait(false);
        return user?.Id ?? throw new ArgumentException(string.Join("; ", errors));
    }

    /// <summary>Trust's services on the configured database, its tables created or upgraded.</summary>
    internal static async Task<ServiceProvider> OpenAsync(IConfiguration configuration, CancellationToken cancellationToken)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        services.AddTrustStore(configuration);
        var provider = services.BuildServiceProvider();
        try
        {
            await TrustDatabase.MigrateAsync(provider, cancellationToken).ConfigureAwait(false);
            return provider;
        }
        catch
        {
            await provider.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
