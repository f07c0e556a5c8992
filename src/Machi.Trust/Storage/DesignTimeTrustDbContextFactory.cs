using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Machi.Trust.Storage;

/// <summary>For <c>dotnet ef migrations add</c> only (see Storage/Migrations/README.md).</summary>
internal sealed class DesignTimeTrustDbContextFactory : IDesignTimeDbContextFactory<TrustDbContext>
{
    public TrustDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<TrustDbContext>();
        options.UseMachiSqlite(Path.GetTempPath());
        return new TrustDbContext(options.Options);
    }
}

/// <summary>For <c>dotnet ef migrations add … --context PostgresTrustDbContext --output-dir Storage/PostgresMigrations</c> only.</summary>
internal sealed class DesignTimePostgresTrustDbContextFactory : IDesignTimeDbContextFactory<PostgresTrustDbContext>
{
    public PostgresTrustDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<PostgresTrustDbContext>();
        options.UseMachiPostgres("Host=127.0.0.1;Database=machi_design");
        return new PostgresTrustDbContext(options.Options);
    }
}
