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
