using Machi.Trust.Accounts;
using Machi.Trust.Clients;
using Machi.Trust.Connect;
using Machi.Trust.Keys;
using Machi.Trust.Mail;
using Machi.Trust.Pages;
using Machi.Trust.Storage;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Validation.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Machi.Trust;

/// <summary>Wires the identity provider into a host: services, then middleware and endpoints.</summary>
public static class TrustModule
{
    /// <summary>
    /// The authentication scheme that validates Machi access tokens (<c>Authorization: Bearer …</c>) through OpenIddict
    /// validation, with the local server's keys and a check that the token was not revoked.
    /// </summary>
    public const string BearerScheme = OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme;

    public static IServiceCollection AddMachiTrust(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var identity = services.AddTrustStore(configuration);
        identity.AddSignInManager();
        services.AddAuthentication(IdentityConstants.ApplicationScheme).AddIdentityCookies();
        services.ConfigureApplicationCookie(cookie =>
        {
            cookie.LoginPath = "/account/login";
            cookie.LogoutPath = "/account/logout";
            cookie.AccessDeniedPath = "/account/login";
            cookie.Cookie.Name = "machi.session";
            cookie.Cookie.SameSite = SameSiteMode.Lax;
            cookie.Cookie.HttpOnly = true;
        });
        services.AddAntiforgery(antiforgery =>
        {
            antiforgery.Cookie.Name = "machi.antiforgery";
            antiforgery.FormFieldName = "__RequestVerificationToken";
        });
        services.AddAuthorization();
        services.AddHttpContextAccessor();

        var requireHttps = configuration.GetValue<bool>("Trust:RequireHttps");
        services.AddOpenIddict()
            .AddServer(server =>
            {
                server.SetAuthorizationEndpointUris("connect/authorize")
                    .SetTokenEndpointUris("connect/token")
                    .SetIntrospectionEndpointUris("connect/introspect")
                    .SetRevocationEndpointUris("connect/revoke")
                    .SetUserInfoEndpointUris("connect/userinfo")
                    .SetEndSessionEndpointUris("connect/logout");
                server.AllowAuthorizationCodeFlow().RequireProofKeyForCodeExchange()
                    .AllowClientCredentialsFlow()
                    .AllowRefreshTokenFlow();
                server.RegisterScopes([.. TrustScopes.Names]);

                // PKCE with S256 only: "plain" would hand the verifier to whoever sees the authorization request.
                server.Configure(options => options.CodeChallengeMethods.Remove(CodeChallengeMethods.Plain));
                server.RegisterClaims(Claims.Subject, Claims.Name, Claims.Email, Claims.EmailVerified, Claims.Role);

                // After OpenIddict has revoked a token, APIs that remember validated tokens must forget them.
                server.AddEventHandler<OpenIddictServerEvents.HandleRevocationRequestContext>(handler =>
                    handler.UseSingletonHandler<AccessTokens.OnRevocation>().SetOrder(int.MaxValue - 100_000));

                // Resource servers (the broker, services, other cities) read the JWT directly.
                server.DisableAccessTokenEncryption();
                var aspNetCore = server.UseAspNetCore()
                    .EnableAuthorizationEndpointPassthrough()
                    .EnableTokenEndpointPassthrough()
                    .EnableUserInfoEndpointPassthrough()
                    .EnableEndSessionEndpointPassthrough();
                if (!requireHttps)
                {
                    aspNetCore.DisableTransportSecurityRequirement();
                }
            })
            .AddValidation(validation =>
            {
                validation.UseLocalServer();
                validation.UseAspNetCore();
                validation.EnableTokenEntryValidation();
                validation.AddAudiences(TrustScopes.Audience);
            });
        services.AddOptions<OpenIddictServerOptions>().Configure<IOptions<TrustOptions>>((server, trust) =>
        {
            server.AccessTokenLifetime = trust.Value.AccessTokenLifetime;
            server.IdentityTokenLifetime = trust.Value.IdentityTokenLifetime;
            server.RefreshTokenLifetime = trust.Value.RefreshTokenLifetime;
        });

        services.AddSingleton<AccessTokens>();
        services.AddSingleton<AccessTokens.OnRevocation>();
        services.AddSingleton<KeyRing>();
        services.AddSingleton<IConfigureOptions<OpenIddictServerOptions>, KeyRing.ServerSetup>();
        services.AddSingleton<KeyRotationService>();
        services.AddHostedService(sp => sp.GetRequiredService<KeyRotationService>());
        return services;
    }

    /// <summary>
    /// Accounts, clients and the key ring on Machi's database, without the web parts: what <c>machi user add</c> and
    /// <c>machi client add</c> need with the server stopped.
    /// </summary>
    internal static IdentityBuilder AddTrustStore(this IServiceCollection services, IConfiguration configuration)
    {
        var dataDirectory = DataDirectory(configuration);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<TrustOptions>().Bind(configuration.GetSection("Trust"))
            .PostConfigure(trust => trust.DataDirectory = dataDirectory);
        var database = configuration["Broker:Database"];
        var postgres = !string.IsNullOrWhiteSpace(database);
        if (postgres)
        {
            services.AddDbContext<TrustDbContext, PostgresTrustDbContext>(db => db.UseMachiPostgres(database!));
        }
        else
        {
            services.AddDbContext<TrustDbContext>(db => db.UseMachiSqlite(dataDirectory));
        }

        services.AddOpenIddict().AddCore(core => core.UseEntityFrameworkCore().UseDbContext<TrustDbContext>());

        // Cookies, e-mail and reset tokens are protected with keys that must outlive a restart; on PostgreSQL every
        // node must read the same keys, so they live in the database.
        var protection = services.AddDataProtection().SetApplicationName("Machi");
        if (postgres)
        {
            protection.PersistKeysToDbContext<TrustDbContext>();
        }
        else
        {
            protection.PersistKeysToFileSystem(new DirectoryInfo(TrustDatabase.DataProtectionKeyDirectory(dataDirectory)));
        }

        var identity = services.AddIdentityCore<MachiUser>()
            .AddEntityFrameworkStores<TrustDbContext>()
            .AddDefaultTokenProviders()
            .AddClaimsPrincipalFactory<RoleClaimsPrincipalFactory>();
        services.AddOptions<IdentityOptions>().Configure<IOptions<TrustOptions>>((options, trust) =>
        {
            options.User.RequireUniqueEmail = true;
            options.SignIn.RequireConfirmedEmail = true;
            options.Password.RequiredLength = 8;
            options.Password.RequireDigit = false;
            options.Password.RequireLowercase = false;
            options.Password.RequireUppercase = false;
            options.Password.RequireNonAlphanumeric = false;
            options.Lockout.AllowedForNewUsers = true;
            options.Lockout.MaxFailedAccessAttempts = trust.Value.MaxFailedAccessAttempts;
            options.Lockout.DefaultLockoutTimeSpan = trust.Value.LockoutDuration;
            options.ClaimsIdentity.UserIdClaimType = Claims.Subject;
            options.ClaimsIdentity.UserNameClaimType = Claims.Name;
            options.ClaimsIdentity.RoleClaimType = Claims.Role;
            options.ClaimsIdentity.EmailClaimType = Claims.Email;
        });
        services.Replace(ServiceDescriptor.Scoped<IPasswordHasher<MachiUser>, Argon2PasswordHasher>());
        services.TryAddSingleton<IMailSender, OutboxMailSender>();
        services.AddScoped<AccountService>();
        services.AddScoped<ClientRegistry>();
        services.AddScoped<ServiceDirectory>();
        return identity;
    }

    /// <summary>
    /// Creates or upgrades Trust's tables and makes the first keys, then adds authentication to the pipeline and maps
    /// the OpenID Connect endpoints, <c>/api/me</c> and the account pages.
    /// </summary>
    public static WebApplication MapMachiTrust(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        TrustDatabase.MigrateAsync(app.Services, CancellationToken.None).GetAwaiter().GetResult();
        app.Services.GetRequiredService<KeyRing>().RotateIfDueAsync(CancellationToken.None).GetAwaiter().GetResult();

        // Authentication runs only where it is needed: under Trust's own paths and on endpoints that require
        // authorization. OpenIddict's server and validation are authentication *request* handlers, which inspect every
        // request the middleware sees (measured on broker reads: two dispatcher pipelines on every GET).
        app.UseWhen(NeedsAuthentication, branch => branch.UseAuthentication());
        app.UseAuthorization();

        // WebApplication adds UseAuthentication() in front of everything unless the app has called it itself; the call
        // in the branch above does not count, so mark it (the key is the one WebApplicationBuilder checks).
        ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
        app.MapConnect();
        app.MapAccountPages();
        return app;
    }

    private static bool NeedsAuthentication(HttpContext context)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/connect") || path.StartsWithSegments("/.well-known") || path.StartsWithSegments("/account"))
        {
            return true;
        }

        var metadata = context.GetEndpoint()?.Metadata;
        return metadata?.GetMetadata<IAuthorizeData>() is not null || metadata?.GetMetadata<AuthorizationPolicy>() is not null;
    }

    /// <summary>Requires a valid Machi access token on these endpoints, with every scope in <paramref name="scopes"/> (else 403).</summary>
    public static TBuilder RequireMachiToken<TBuilder>(this TBuilder builder, params string[] scopes)
        where TBuilder : IEndpointConventionBuilder =>
        builder.RequireAuthorization(policy =>
        {
            policy.AddAuthenticationSchemes(BearerScheme).RequireAuthenticatedUser();
            if (scopes.Length > 0)
            {
                policy.RequireAssertion(context => scopes.All(context.User.HasScope));
            }
        });

    /// <summary>The data directory (Broker:DataDirectory) as an absolute path: ./data when unset, relative paths from the current directory.</summary>
    internal static string DataDirectory(IConfiguration configuration) =>
        DataDirectory(configuration["Broker:DataDirectory"], Directory.GetCurrentDirectory());

    /// <summary>The one rule for the data directory: <paramref name="configured"/> against <paramref name="currentDirectory"/>, "data" when blank.</summary>
    internal static string DataDirectory(string? configured, string currentDirectory) =>
        Path.GetFullPath(string.IsNullOrWhiteSpace(configured) ? "data" : configured, currentDirectory);
}
