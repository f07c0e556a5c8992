using Machi.Ngsi.Model;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>Discovery over the type index and the entities' attribute names (entities.attrs), as SqliteEntityStore.Discovery.cs answers it.</summary>
internal sealed partial class PostgresEntityStore
{
    public async ValueTask<EntityCatalog> DescribeAsync(string tenant, CatalogQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var named = new List<string>();
        if (query.Type is not null)
        {
            named.Add(query.Type);
        }

        if (query.Attribute is not null)
        {
            named.Add(query.Attribute);
        }

        var terms = await TermResolverAsync(connection, new Ngsi.Query.EntityFilter { Attrs = named }, cancellationToken).ConfigureAwait(false);
        long? typeId = null;
        long? attrId = null;
        if (query.Type is not null)
        {
            if (terms(query.Type) is not { } id)
            {
                return EntityCatalog.Empty;
            }

            typeId = id;
        }

        if (query.Attribute is not null)
        {
            if (terms(query.Attribute) is not { } id)
            {
                return EntityCatalog.Empty;
            }

            attrId = id;
        }

        await using var cmd = connection.CreateCommand();
        cmd.Parameters.Add(new NpgsqlParameter("tenant", NpgsqlDbType.Text) { Value = tenant });
        cmd.Parameters.Add(new NpgsqlParameter("type", NpgsqlDbType.Bigint) { Value = (object?)typeId ?? DBNull.Value });
        cmd.Parameters.Add(new NpgsqlParameter("attr", NpgsqlDbType.Bigint) { Value = (object?)attrId ?? DBNull.Value });

        // Entities in scope: of the type asked for, having the attribute asked for.
        static string Scope(string alias) => $"""
            (@type IS NULL OR EXISTS (SELECT 1 FROM entity_types s WHERE s.tenant = @tenant AND s.rid = {alias}.rid AND s.type = @type))
            AND (@attr IS NULL OR EXISTS (SELECT 1 FROM entities s WHERE s.tenant = @tenant AND s.rid = {alias}.rid AND @attr = ANY (s.attrs)))
            """;

        var types = new SortedDictionary<string, (long Count, SortedSet<string> Attrs)>(StringComparer.Ordinal);
        cmd.CommandText = $"""
            SELECT t.iri, count(*) FROM entity_types et JOIN terms t ON t.id = et.type
            WHERE et.tenant = @tenant AND (@type IS NULL OR et.type = @type) AND {Scope("et")}
            GROUP BY t.iri
            """;
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                types[r.GetString(0)] = (r.GetInt64(1), new SortedSet<string>(StringComparer.Ordinal));
            }
        }

        var attrs = new SortedDictionary<string, (long Count, SortedSet<string> Types, SortedSet<AttributeKind>? Kinds)>(StringComparer.Ordinal);
        cmd.CommandText = $"""
            SELECT t.iri, count(*) FROM entities e CROSS JOIN LATERAL unnest(e.attrs) ea(name) JOIN terms t ON t.id = ea.name
            WHERE e.tenant = @tenant AND (@attr IS NULL OR ea.name = @attr) AND {Scope("e")}
            GROUP BY t.iri
            """;
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                attrs[r.GetString(0)] = (r.GetInt64(1), new SortedSet<string>(StringComparer.Ordinal), query.AttributeKinds ? [] : null);
            }
        }

        cmd.CommandText = $"""
            SELECT DISTINCT tt.iri, ta.iri FROM entity_types et
            JOIN entities e ON e.tenant = et.tenant AND e.rid = et.rid CROSS JOIN LATERAL unnest(e.attrs) ea(name)
            JOIN terms tt ON tt.id = et.type JOIN terms ta ON ta.id = ea.name
            WHERE et.tenant = @tenant AND (@type IS NULL OR et.type = @type) AND (@attr IS NULL OR ea.name = @attr)
              AND {Scope("et")}
            """;
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
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
            cmd.CommandText = $"SELECT e.doc FROM entities e WHERE e.tenant = @tenant AND {Scope("e")}";
            await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                foreach (var (name, instances) in EntityCodec.Decode(r.GetFieldValue<byte[]>(0)).Attributes)
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

        return new EntityCatalog(
            [.. types.Select(t => new TypeSummary(t.Key, t.Value.Count, [.. t.Value.Attrs]))],
            [.. attrs.Select(a => new AttributeSummary(a.Key, a.Value.Count, [.. a.Value.Types], a.Value.Kinds is null ? null : [.. a.Value.Kinds]))]);
    }
}
