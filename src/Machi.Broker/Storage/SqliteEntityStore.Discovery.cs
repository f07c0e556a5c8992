using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>
/// Discovery over the type and attribute-name indexes (entity_types, entity_attrs): names and counts come from the
/// index rows alone. Attribute types (Property, Relationship …) are not indexed; when asked for they are read from
/// the current entities in scope, so they are always right after updates and deletes, at the cost of a scan that
/// is fine for a city's thousands of entities of a type but grows with the data.
/// </summary>
internal sealed partial class SqliteEntityStore
{
    public ValueTask<EntityCatalog> DescribeAsync(string tenant, CatalogQuery query, CancellationToken cancellationToken)
    {
        var reader = RentReader();
        try
        {
            long? typeId = null;
            long? attrId = null;
            if (query.Type is not null)
            {
                if (TermId(reader, query.Type) is not { } id)
                {
                    return ValueTask.FromResult(EntityCatalog.Empty);
                }

                typeId = id;
            }

            if (query.Attribute is not null)
            {
                if (TermId(reader, query.Attribute) is not { } id)
                {
                    return ValueTask.FromResult(EntityCatalog.Empty);
                }

                attrId = id;
            }

            using var cmd = reader.Connection.CreateCommand();
            cmd.Parameters.AddWithValue("$tenant", tenant);
            cmd.Parameters.AddWithValue("$type", (object?)typeId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$attr", (object?)attrId ?? DBNull.Value);

            // Entities in scope: of the type asked for, having the attribute asked for.
            static string Scope(string alias) => $"""
                ($type IS NULL OR EXISTS (SELECT 1 FROM entity_types s WHERE s.tenant = $tenant AND s.rid = {alias}.rid AND s.type = $type))
                AND ($attr IS NULL OR EXISTS (SELECT 1 FROM entity_attrs s WHERE s.tenant = $tenant AND s.rid = {alias}.rid AND s.name = $attr))
                """;

            var types = new SortedDictionary<string, (long Count, SortedSet<string> Attrs)>(StringComparer.Ordinal);
            cmd.CommandText = $"""
                SELECT t.iri, count(*) FROM entity_types et JOIN terms t ON t.id = et.type
                WHERE et.tenant = $tenant AND ($type IS NULL OR et.type = $type) AND {Scope("et")}
                GROUP BY et.type
                """;
            using (var r = cmd.ExecuteReader())
            {
                while (r.Read())
                {
                    types[r.GetString(0)] = (r.GetInt64(1), new SortedSet<string>(StringComparer.Ordinal));
                }
            }

            var attrs = new SortedDictionary<string, (long Count, SortedSet<string> Types, SortedSet<AttributeKind>? Kinds)>(StringComparer.Ordinal);
            cmd.CommandText = $"""
                SELECT t.iri, count(*) FROM entity_attrs ea JOIN terms t ON t.id = ea.name
                WHERE ea.tenant = $tenant AND ($attr IS NULL OR ea.name = $attr) AND {Scope("ea")}
                GROUP BY ea.name
                """;
            using (var r = cmd.ExecuteReader())
            {
                while (r.Read())
                {
                    attrs[r.GetString(0)] = (r.GetInt64(1), new SortedSet<string>(StringComparer.Ordinal), query.AttributeKinds ? [] : null);
                }
            }

            // Which attribute names occur with which types.
            cmd.CommandText = $"""
                SELECT DISTINCT tt.iri, ta.iri FROM entity_types et
                JOIN entity_attrs ea ON ea.tenant = et.tenant AND ea.rid = et.rid
                JOIN terms tt ON tt.id = et.type JOIN terms ta ON ta.id = ea.name
                WHERE et.tenant = $tenant AND ($type IS NULL OR et.type = $type) AND ($attr IS NULL OR ea.name = $attr)
                  AND {Scope("et")}
                """;
            using (var r = cmd.ExecuteReader())
            {
                while (r.Read())
                {
                    var type = r.GetString(0);
                    var attr = r.GetString(1);
                    if (types.TryGetValue(type, out var t))
                    {
                        t.Attrs.Add(attr);
                    }

                    if (attrs.TryGetValue(attr, out var a))
                    {
                        a.Types.Add(type);
                    }
                }
            }

            if (query.AttributeKinds && attrs.Count > 0)
            {
                cmd.CommandText = $"SELECT e.doc FROM entities e WHERE e.tenant = $tenant AND {Scope("e")}";
                using var r = cmd.ExecuteReader();
                while (r.Read())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    foreach (var (name, instances) in Decode(r, 0).Attributes)
                    {
                        if (attrs.TryGetValue(name, out var a))
                        {
                            foreach (var instance in instances)
                            {
                                a.Kinds!.Add(instance.Kind);
                            }
                        }
                    }
                }
            }

            var catalog = new EntityCatalog(
                [.. types.Select(t => new TypeSummary(t.Key, t.Value.Count, [.. t.Value.Attrs]))],
                [.. attrs.Select(a => new AttributeSummary(a.Key, a.Value.Count, [.. a.Value.Types], a.Value.Kinds is null ? null : [.. a.Value.Kinds]))]);
            return ValueTask.FromResult(catalog);
        }
        catch (SqliteException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            ReturnReader(reader);
        }
    }
}
