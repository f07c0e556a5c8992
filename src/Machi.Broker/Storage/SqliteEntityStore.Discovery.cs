using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>
/// Discovery over the type index (entity_types, read in one snapshot) and the in-memory attribute-name index: names and
/// counts come from index entries, not from documents. A name entry counts only for an entity of the snapshot; while a
/// write that changes an existing entity's attribute names is under way, that entity may count under its names before or
/// after the write (the in-memory index holds both until the write commits and older queries end). Attribute types
/// (Property, Relationship …) are not indexed; when asked for they are read from the current entities in scope, so
/// they are always right after updates and deletes, at the cost of a scan that is fine for a city's thousands of
/// entities of a type but grows with the data.
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

            // The name index keeps what this snapshot may need until the end (as a query's candidates do).
            var since = _memory.BeginRead();
            Execute(reader.Connection, "BEGIN; SELECT 1 FROM entities LIMIT 1;");
            try
            {
                return ValueTask.FromResult(Describe(reader.Connection, tenant, typeId, attrId, query.AttributeKinds, cancellationToken));
            }
            finally
            {
                Execute(reader.Connection, "COMMIT");
                _memory.EndRead(since);
            }
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

    private EntityCatalog Describe(SqliteConnection connection, string tenant, long? typeId, long? attrId, bool attributeKinds, CancellationToken cancellationToken)
    {
        using var cmd = connection.CreateCommand();
        cmd.Parameters.AddWithValue("$tenant", tenant);

        // Every entity of the snapshot has a type: its type rows are the snapshot's entities.
        var typesOf = new EntityTypes();
        cmd.CommandText = "SELECT rid, type FROM entity_types WHERE tenant = $tenant";
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                typesOf.Add(r.GetInt64(0), r.GetInt64(1));
            }
        }

        // The entities of the snapshot with each attribute name (or the one asked for).
        var named = new Dictionary<long, List<long>>();
        var rids = new List<long>();
        foreach (var name in attrId is { } only ? [only] : _memory.NameTerms(tenant))
        {
            cancellationToken.ThrowIfCancellationRequested();
            rids.Clear();
            var source = _memory.Names(tenant, [name]);
            while (source.Read(rids, 4096) > 0)
            {
            }

            var present = rids.Where(typesOf.Contains).ToList();
            if (present.Count > 0)
            {
                named[name] = present;
            }
        }

        // Entities in scope: of the type asked for, having the attribute asked for.
        var withAttr = attrId is { } a ? named.GetValueOrDefault(a, []).ToHashSet() : null;
        bool InScope(long rid) => (withAttr is null || withAttr.Contains(rid)) && (typeId is null || typesOf.Has(rid, typeId.Value));
        bool Listed(long type) => typeId is null || type == typeId;

        var typeCounts = new Dictionary<long, long>();
        foreach (var (rid, types) in typesOf.All)
        {
            if (InScope(rid))
            {
                foreach (var type in types)
                {
                    if (Listed(type))
                    {
                        typeCounts[type] = typeCounts.GetValueOrDefault(type) + 1;
                    }
                }
            }
        }

        // Counts of the attribute names, and which names occur with which types.
        var nameCounts = new Dictionary<long, long>();
        var pairs = new HashSet<(long Type, long Name)>();
        foreach (var (name, present) in named)
        {
            foreach (var rid in present)
            {
                if (!InScope(rid))
                {
                    continue;
                }

                nameCounts[name] = nameCounts.GetValueOrDefault(name) + 1;
                foreach (var type in typesOf.Of(rid))
                {
                    if (Listed(type))
                    {
                        pairs.Add((type, name));
                    }
                }
            }
        }

        var iris = Iris(connection, typeCounts.Keys.Concat(nameCounts.Keys));
        var typeSummaries = new SortedDictionary<string, (long Count, SortedSet<string> Attrs)>(StringComparer.Ordinal);
        foreach (var (type, count) in typeCounts)
        {
            typeSummaries[iris[type]] = (count, new SortedSet<string>(StringComparer.Ordinal));
        }

        var attrs = new SortedDictionary<string, (long Count, SortedSet<string> Types, SortedSet<AttributeKind>? Kinds)>(StringComparer.Ordinal);
        foreach (var (name, count) in nameCounts)
        {
            attrs[iris[name]] = (count, new SortedSet<string>(StringComparer.Ordinal), attributeKinds ? [] : null);
        }

        foreach (var (type, name) in pairs)
        {
            typeSummaries[iris[type]].Attrs.Add(iris[name]);
            attrs[iris[name]].Types.Add(iris[type]);
        }

        if (attributeKinds && attrs.Count > 0)
        {
            cmd.Parameters.AddWithValue("$type", (object?)typeId ?? DBNull.Value);
            cmd.CommandText = """
                SELECT e.rid, e.doc FROM entities e WHERE e.tenant = $tenant
                  AND ($type IS NULL OR EXISTS (SELECT 1 FROM entity_types s WHERE s.tenant = $tenant AND s.rid = e.rid AND s.type = $type))
                """;
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!InScope(r.GetInt64(0)))
                {
                    continue;
                }

                foreach (var (name, instances) in Decode(r, 1).Attributes)
                {
                    if (attrs.TryGetValue(name, out var found))
                    {
                        foreach (var instance in instances)
                        {
                            found.Kinds!.Add(instance.Kind);
                        }
                    }
                }
            }
        }

        return new EntityCatalog(
            [.. typeSummaries.Select(t => new TypeSummary(t.Key, t.Value.Count, [.. t.Value.Attrs]))],
            [.. attrs.Select(a => new AttributeSummary(a.Key, a.Value.Count, [.. a.Value.Types], a.Value.Kinds is null ? null : [.. a.Value.Kinds]))]);
    }

    /// <summary>The IRIs of the given term ids.</summary>
    private static Dictionary<long, string> Iris(SqliteConnection connection, IEnumerable<long> terms)
    {
        var iris = new Dictionary<long, string>();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT iri FROM terms WHERE id = $id";
        var id = cmd.Parameters.Add("$id", SqliteType.Integer);
        foreach (var term in terms)
        {
            if (!iris.ContainsKey(term))
            {
                id.Value = term;
                iris[term] = (string)cmd.ExecuteScalar()!;
            }
        }

        return iris;
    }

    /// <summary>The type term ids of each entity (by rid): most have one, kept without a list.</summary>
    private sealed class EntityTypes
    {
        private readonly Dictionary<long, long> _first = [];
        private readonly Dictionary<long, List<long>> _more = [];

        public IEnumerable<(long Rid, IEnumerable<long> Types)> All => _first.Keys.Select(rid => (rid, Of(rid)));

        public void Add(long rid, long type)
        {
            if (_first.TryAdd(rid, type))
            {
                return;
            }

            if (!_more.TryGetValue(rid, out var more))
            {
                _more[rid] = more = [];
            }

            more.Add(type);
        }

        public bool Contains(long rid) => _first.ContainsKey(rid);

        public bool Has(long rid, long type) =>
            _first.TryGetValue(rid, out var first) && (first == type || (_more.TryGetValue(rid, out var more) && more.Contains(type)));

        public IEnumerable<long> Of(long rid)
        {
            if (!_first.TryGetValue(rid, out var first))
            {
                yield break;
            }

            yield return first;
            if (_more.TryGetValue(rid, out var more))
            {
                foreach (var type in more)
                {
                    yield return type;
                }
            }
        }
    }
}
