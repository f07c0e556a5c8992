using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;

namespace Machi.Trust.Storage;

/// <summary>One of Trust's tables as EF Core maps it: its name and the columns EF Core reads as dates (by CLR type).</summary>
internal sealed record TrustTable(string Name, IReadOnlyDictionary<string, Type> Dates);

/// <summary>Trust's tables, for moving a city (machi export / import): read from the EF Core model, not listed again.</summary>
internal static class TrustTables
{
    /// <summary>
    /// Every table of the model except the data-protection keys (files in the data directory on SQLite, so moved on
    /// their own), each after the tables its foreign keys point to.
    /// </summary>
    public static IReadOnlyList<TrustTable> InOrder(IModel model)
    {
        var pending = model.GetEntityTypes().Where(e => e.ClrType != typeof(DataProtectionKey) && e.GetTableName() is not null).ToList();
        var ordered = new List<IEntityType>();
        while (pending.Count > 0)
        {
            var ready = pending.Where(e => e.GetForeignKeys().All(fk => fk.PrincipalEntityType == e || ordered.Contains(fk.PrincipalEntityType))).ToList();
            if (ready.Count == 0)
            {
                throw new InvalidOperationException("Trust's tables reference each other in a cycle.");
            }

            ordered.AddRange(ready);
            pending.RemoveAll(ready.Contains);
        }

        return [.. ordered.Select(e =>
        {
            var table = StoreObjectIdentifier.Table(e.GetTableName()!, e.GetSchema());
            var dates = new Dictionary<string, Type>(StringComparer.Ordinal);
            foreach (var property in e.GetProperties())
            {
                var type = Nullable.GetUnderlyingType(property.ClrType) ?? property.ClrType;
                if ((type == typeof(DateTime) || type == typeof(DateTimeOffset)) && property.GetColumnName(table) is { } column)
                {
                    dates[column] = type;
                }
            }

            return new TrustTable(e.GetTableName()!, dates);
        })];
    }
}
