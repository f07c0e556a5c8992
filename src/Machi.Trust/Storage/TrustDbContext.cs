using System.Text;
using Machi.Trust.Accounts;
using Machi.Trust.Keys;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace Machi.Trust.Storage;

/// <summary>
/// Accounts (ASP.NET Core Identity), OpenIddict's applications, authorizations and tokens, and the key ring: one
/// context over Machi's own database, in tables named <c>trust_*</c> so they sit clearly beside the broker's.
/// </summary>
internal class TrustDbContext : IdentityUserContext<MachiUser>, IDataProtectionKeyContext
{
    public TrustDbContext(DbContextOptions<TrustDbContext> options)
        : base(options)
    {
    }

    /// <summary>For <see cref="PostgresTrustDbContext"/> (not public: the container must see one constructor).</summary>
    protected TrustDbContext(DbContextOptions options)
        : base(options)
    {
    }

    /// <summary>EF's migration history table for Trust (the broker keeps its own <c>schema_migrations</c>).</summary>
    public const string MigrationsHistoryTable = "trust_ef_migrations";

    public DbSet<TrustKey> Keys => Set<TrustKey>();

    /// <summary>ASP.NET Core data-protection keys (cookies, e-mail and reset tokens), shared by every node of one database.</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.UseOpenIddict();
        builder.Entity<MachiUser>(user =>
        {
            user.Property(u => u.Role).HasMaxLength(32).IsRequired();
        });
        builder.Entity<TrustKey>(key =>
        {
            key.ToTable("trust_keys");
            key.HasKey(k => k.Id);
            key.Property(k => k.Id).HasMaxLength(64);
            key.Property(k => k.Use).HasMaxLength(8).IsRequired();
            key.Property(k => k.Pem).IsRequired();
        });

        foreach (var entity in builder.Model.GetEntityTypes())
        {
            if (entity.GetTableName() is { } table && !table.StartsWith("trust_", StringComparison.Ordinal))
            {
                entity.SetTableName(TableName(table));
            }
        }
    }

    /// <summary>AspNetUserTokens → trust_user_tokens, OpenIddictApplications → trust_applications.</summary>
    internal static string TableName(string efName)
    {
        var name = efName.StartsWith("AspNet", StringComparison.Ordinal) ? efName["AspNet".Length..]
            : efName.StartsWith("OpenIddict", StringComparison.Ordinal) ? efName["OpenIddict".Length..]
            : efName;
        var snake = new StringBuilder("trust");
        foreach (var c in name)
        {
            if (char.IsUpper(c))
            {
                snake.Append('_');
            }

            snake.Append(char.ToLowerInvariant(c));
        }

        return snake.ToString();
    }
}

/// <summary>Trust's tables on PostgreSQL: the same model, with migrations of its own (Storage/PostgresMigrations).</summary>
internal sealed class PostgresTrustDbContext(DbContextOptions<PostgresTrustDbContext> options) : TrustDbContext(options);
