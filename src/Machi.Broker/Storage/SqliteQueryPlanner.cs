using System.Globalization;
using System.Text;
using Machi.Broker.Access;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>
/// Turns an <see cref="EntityFilter"/> into the SQL that finds its candidates through the indexes: ids through the
/// entities' unique key, types and attribute names through entity_types/entity_attrs, q comparisons on a top-level
/// attribute through entity_values, and geo-queries through the entity_geo R*Tree. What SQL cannot decide exactly
/// (idPattern, scopeQ, the geometry itself, the parts of q no index holds) stays with the evaluator, which runs
/// on every candidate; when nothing is left for it, the database pages and counts on its own.
/// </summary>
internal sealed class SqliteQueryPlanner
{
    private readonly SqliteCommand _command;
    private readonly Func<string, long?> _termId;
    private readonly List<Condition> _conditions = [];
    private string _access = "";
    private int _parameters;

    private SqliteQueryPlanner(SqliteCommand command, string tenant, Func<string, long?> termId)
    {
        _command = command;
        _termId = termId;
        command.Parameters.AddWithValue("$tenant", tenant);
    }

    /// <summary>False when no entity can match (e.g. a type no entity ever had).</summary>
    public bool Satisfiable { get; private set; } = true;

    /// <summary>True when the SQL alone decides the filter, so the evaluator need not run.</summary>
    public bool Exact { get; private set; } = true;

    /// <summary>
    /// "SELECT e.rid, e.doc …" of the candidates for the evaluator, in the driving index's own order (rid order
    /// for one key, value order for a range, R*Tree order for a box): no candidate set is gathered and sorted
    /// first, so a page costs the candidates it reads, however many there are. The order is the same for the
    /// same data, so pages follow each other; a candidate may come twice (a box per GeoProperty), so the reader
    /// skips rids it has seen.
    /// </summary>
    public string Streamed
    {
        get
        {
            if (Driver() is not { } plan)
            {
                return $"SELECT e.rid, e.doc FROM entities e WHERE e.tenant = $tenant{_access} ORDER BY e.rid";
            }

            var (driver, others) = plan;
            var filters = Filters(others, "d.rid");
            return driver.Stream is { } stream
                ? $"SELECT e.rid, e.doc FROM {stream.Table} d JOIN entities e ON e.rid = d.rid WHERE {stream.Where} AND +e.tenant = $tenant{filters}{_access} ORDER BY d.rid"
                : $"SELECT e.rid, e.doc FROM ({driver.Rids}) d CROSS JOIN entities e ON e.rid = d.rid WHERE +e.tenant = $tenant{filters}{_access}";
        }
    }

    /// <summary>
    /// "FROM … WHERE …" of the matching entities as e in storage (rid) order, for a filter SQL decides alone
    /// (<see cref="Exact"/>), so the database pages and counts: streamed from the driving index when it is one key,
    /// gathered and sorted when it is a union.
    /// </summary>
    public (string FromWhere, string OrderBy) Sql
    {
        get
        {
            if (Driver() is not { } plan)
            {
                return ($"FROM entities e WHERE e.tenant = $tenant{_access}", "e.rid");
            }

            var (driver, others) = plan;
            return driver.Stream is { } stream
                ? ($"FROM {stream.Table} d JOIN entities e ON e.rid = d.rid WHERE {stream.Where} AND +e.tenant = $tenant{Filters(others, "d.rid")}{_access}", "d.rid")
                : ($"FROM entities e WHERE +e.tenant = $tenant AND e.rid IN ({driver.Rids}){Filters(others, "e.rid")}{_access}", "e.rid");
        }
    }

    /// <summary>The most selective condition, which drives, and the others. Null when there is no condition.</summary>
    private (Condition Driver, IEnumerable<Condition> Others)? Driver()
    {
        if (_conditions.Count == 0)
        {
            return null;
        }

        var ordered = _conditions.OrderBy(c => c.Rank).ToList();
        return (ordered[0], ordered.Skip(1));
    }

    /// <summary>
    /// The conditions that do not drive, as per-candidate point lookups (" AND …") on the candidate's rid
    /// <paramref name="rid"/>; those no lookup can answer (ranges, boxes) are left to the evaluator. On the driving
    /// index's own rid (d.rid) SQLite checks them before it reads the entity row, so a candidate they reject costs
    /// an index probe instead of a table row (a type + q query rejects four candidates in five that way).
    /// </summary>
    private static string Filters(IEnumerable<Condition> others, string rid) =>
        string.Concat(others.Where(c => c.Filter is not null).Select(c => " AND " + c.Filter!(rid)));

    /// <summary>Plans <paramref name="filter"/> into <paramref name="command"/>'s parameters; read <see cref="Sql"/>.</summary>
    public static SqliteQueryPlanner Plan(SqliteCommand command, string tenant, EntityFilter filter, Func<string, long?> termId, AccessFilter? access = null)
    {
        var planner = new SqliteQueryPlanner(command, tenant, termId);
        planner.AddAccess(access);
        planner.AddSelectors(filter.Selectors);
        planner.AddAttrs(filter.Attrs);
        planner.AddQ(filter.Q);
        planner.AddGeo(filter.Geo);
        if (filter.Scope is not null)
        {
            planner.Exact = false;
        }

        return planner;
    }

    /// <summary>Restricts every form of the query to what the caller may see (<see cref="AccessFilter.Condition"/>), on the entity row itself.</summary>
    private void AddAccess(AccessFilter? access)
    {
        if (access is not null)
        {
            _access = " AND " + access.Condition(Parameter);
        }
    }

    private void AddSelectors(IReadOnlyList<EntitySelector>? selectors)
    {
        if (selectors is null || selectors.Count == 0)
        {
            return;
        }

        var alternatives = new List<Condition>();
        foreach (var selector in selectors)
        {
            var parts = new List<Condition>();
            if (selector.Ids is { Count: > 0 } ids)
            {
                var list = List(ids);
                parts.Add(new Condition(DriverRank.Ids, $"SELECT rid FROM entities WHERE tenant = $tenant AND id IN ({list})", _ => $"e.id IN ({list})"));
            }

            if (selector.IdPattern is not null)
            {
                Exact = false;
            }

            if (selector.Type is { } type)
            {
                if (type.SimpleTypes is null)
                {
                    Exact = false;
                }

                // No type expression matches an entity that has none of the types it names.
                var terms = Terms(type.Names);
                if (terms.Count == 0)
                {
                    continue;
                }

                parts.Add(KeyCondition(DriverRank.Types, "entity_types", "type", terms));
            }

            if (parts.Count == 0)
            {
                // A selector with only an idPattern: every entity is a candidate.
                return;
            }

            alternatives.Add(parts.Count == 1 ? parts[0] : new Condition(
                parts.Min(p => p.Rank),
                string.Join(" INTERSECT ", parts.Select(p => p.Rids)),
                rid => "(" + string.Join(" AND ", parts.Select(p => p.Filter!(rid))) + ")"));
        }

        if (alternatives.Count == 0)
        {
            Satisfiable = false;
            return;
        }

        _conditions.Add(alternatives.Count == 1 ? alternatives[0] : new Condition(
            alternatives.Max(a => a.Rank),
            string.Join(" UNION ", alternatives.Select(a => a.Rids)),
            rid => "(" + string.Join(" OR ", alternatives.Select(a => a.Filter!(rid))) + ")"));
    }

    private void AddAttrs(IReadOnlyList<string>? attrs)
    {
        if (attrs is null || attrs.Count == 0)
        {
            return;
        }

        var terms = Terms(attrs);
        if (terms.Count == 0)
        {
            Satisfiable = false;
            return;
        }

        _conditions.Add(KeyCondition(DriverRank.Attributes, "entity_attrs", "name", terms));
    }

    /// <summary>
    /// Entities with any of <paramref name="keys"/> in an index table keyed (tenant, column, rid): streamed in rid
    /// order from the index when there is one key, checked by point lookups when it does not drive.
    /// </summary>
    private Condition KeyCondition(DriverRank rank, string table, string column, List<long> keys)
    {
        var list = List(keys);
        return new Condition(
            rank,
            $"SELECT rid FROM {table} WHERE tenant = $tenant AND {column} IN ({list})",
            rid => $"EXISTS (SELECT 1 FROM {table} x WHERE x.tenant = $tenant AND x.{column} IN ({list}) AND x.rid = {rid})",
            keys.Count == 1 ? (table, $"d.tenant = $tenant AND d.{column} = {list}") : null);
    }

    // Each term of a top-level conjunction that an index can answer narrows the candidates; the evaluator still
    // checks the whole expression (an index row says "some instance holds this value", q says more).
    private void AddQ(QExpression? q)
    {
        if (q is null)
        {
            return;
        }

        Exact = false;
        var terms = q is QLogical { IsAnd: true } and ? and.Terms : [q];
        foreach (var term in terms)
        {
            switch (term)
            {
                case QExists { Negated: false, Path: { Names.Count: 1, Members.Count: 0 } path }:
                    RequireAttribute(path.Attribute);
                    break;
                case QComparison { Path: { Names.Count: 1, Members.Count: 0 } path } comparison:
                    AddComparison(path.Attribute, comparison.Operator, comparison.Value);
                    break;
                default:
                    break;
            }
        }
    }

    private void RequireAttribute(string attribute)
    {
        if (_termId(attribute) is not { } term)
        {
            Satisfiable = false;
            return;
        }

        _conditions.Add(KeyCondition(DriverRank.Attributes, "entity_attrs", "name", [term]));
    }

    private void AddComparison(string attribute, QOperator op, QValue value)
    {
        if (op == QOperator.NotEqual)
        {
            return;
        }

        if (_termId(attribute) is not { } term)
        {
            Satisfiable = false;
            return;
        }

        if (op == QOperator.Equal && value is not QRange)
        {
            if (Keys(term, value is QList list ? list.Values : [value]) is { } keys)
            {
                _conditions.Add(EqualAny(keys));
            }

            return;
        }

        var range = op == QOperator.Equal ? Between(term, ((QRange)value).From, ((QRange)value).To) : Bound(term, op, value);
        if (range is not null)
        {
            // A range is gathered whole when it drives and left to the evaluator otherwise (no point lookup answers it).
            _conditions.Add(new Condition(DriverRank.Range, $"SELECT rid FROM entity_values WHERE tenant = $tenant AND {range}", null));
        }
    }

    private Condition EqualAny(List<(long Key, object Value)> keys)
    {
        var groups = string.Join(" OR ", keys.GroupBy(k => k.Key).Select(g => $"(attr = {Parameter(g.Key)} AND value IN ({List(g.Select(k => k.Value).ToList())}))"));
        (string, string)? stream = keys.Count == 1
            ? ("entity_values", $"d.tenant = $tenant AND d.attr = {Parameter(keys[0].Key)} AND d.value = {Parameter(keys[0].Value)}")
            : null;
        return new Condition(
            DriverRank.Equality,
            $"SELECT rid FROM entity_values WHERE tenant = $tenant AND ({groups})",
            rid => $"EXISTS (SELECT 1 FROM entity_values x WHERE x.tenant = $tenant AND ({groups}) AND x.rid = {rid})",
            stream);
    }

    /// <summary>The index keys of values compared for equality, or null when one of them is not indexed.</summary>
    private static List<(long Key, object Value)>? Keys(long term, IReadOnlyList<QValue> values)
    {
        var keys = new List<(long Key, object Value)>();
        foreach (var v in values)
        {
            if (Key(term, v) is not { } key)
            {
                return null;
            }

            keys.Add(key);

            // A VocabProperty holds the expanded IRI of the word the query wrote.
            var expanded = v switch
            {
                QString s => s.Expanded,
                QUri u => u.Expanded,
                _ => null,
            };
            if (expanded is not null && expanded != (string)key.Value)
            {
                keys.Add((term, expanded));
            }
        }

        return keys;
    }

    private string? Between(long term, QValue from, QValue to)
    {
        if (!Orderable(from) || !Orderable(to) || Key(term, from) is not { } low || Key(term, to) is not { } high || low.Key != high.Key || ClassOf(low.Value) != ClassOf(high.Value))
        {
            return null;
        }

        return $"attr = {Parameter(low.Key)} AND value >= {Parameter(low.Value)} AND value <= {Parameter(high.Value)}";
    }

    // One-sided comparisons get the other side from SQLite's ordering of storage classes (numbers < text < blob),
    // so a numeric bound never sweeps in strings and the scan stays inside one class.
    private string? Bound(long term, QOperator op, QValue value)
    {
        if (!Orderable(value) || Key(term, value) is not { } key || value is QBoolean)
        {
            return null;
        }

        var isText = key.Value is string;
        var sign = op switch
        {
            QOperator.Greater => ">",
            QOperator.GreaterOrEqual => ">=",
            QOperator.Less => "<",
            _ => "<=",
        };
        var upward = op is QOperator.Greater or QOperator.GreaterOrEqual;
        var fence = (upward, isText) switch
        {
            (true, false) => " AND value < ''",
            (true, true) => " AND value < x''",
            (false, true) => " AND value >= ''",
            _ => "", // numbers sort first: the scan starts at the attribute's first value anyway
        };
        return $"attr = {Parameter(key.Key)} AND value {sign} {Parameter(key.Value)}{fence}";
    }

    /// <summary>
    /// Whether SQLite orders this bound as the evaluator does. Text is compared by UTF-16 code units there and by
    /// UTF-8 bytes here; the two orders differ only between U+E000–U+FFFF and characters beyond U+FFFF, so a bound
    /// holding such a character, or one that expands (vocab), is left to the evaluator alone.
    /// </summary>
    private static bool Orderable(QValue value) => value switch
    {
        QString s => (s.Expanded is null || s.Expanded == s.Value) && !s.Value.Any(c => c >= '\uE000'),
        QUri u => (u.Expanded is null || u.Expanded == u.Value) && !u.Value.Any(c => c >= '\uE000'),
        _ => true,
    };

    /// <summary>The index key of a literal: (attribute key, value as stored), or null when no index row holds it.</summary>
    private static (long Key, object Value)? Key(long term, QValue value) => value switch
    {
        QNumber n => (term, Math.Floor(n.Value) == n.Value && Math.Abs(n.Value) < 9e18 ? (long)n.Value : n.Value),
        QString s => (term, s.Value),
        QUri u => (term, u.Value),
        QBoolean b => (term, b.Value ? 1L : 0L),
        QDateTime d when NgsiText.TryParseDateTime(d.Text, out var instant) => (-term, instant.UtcTicks),
        _ => null,
    };

    private static int ClassOf(object value) => value is string ? 1 : 0;

    private void AddGeo(GeoQuery? geo)
    {
        if (geo is null)
        {
            return;
        }

        Exact = false;
        if (geo.Relation == GeoRelation.Disjoint || (geo.Relation == GeoRelation.Near && geo.MaxDistance is null))
        {
            // Far from or outside a shape: no box bounds the answer.
            return;
        }

        if (_termId(geo.GeoProperty) is null)
        {
            Satisfiable = false;
            return;
        }

        var envelope = geo.Geometry.EnvelopeInternal;
        var boxes = new List<GeoBox>();
        if (geo.Relation == GeoRelation.Near)
        {
            // Every corner's distance box; their union holds every point within the distance of the shape.
            foreach (var (lat, lon) in new[] { (envelope.MinY, envelope.MinX), (envelope.MinY, envelope.MaxX), (envelope.MaxY, envelope.MinX), (envelope.MaxY, envelope.MaxX) })
            {
                boxes.Add(GeoMath.BoundingBox(lat, lon, geo.MaxDistance!.Value));
            }
        }
        else
        {
            boxes.Add(new GeoBox(envelope.MinY, envelope.MinX, envelope.MaxY, envelope.MaxX));
        }

        var south = boxes.Min(b => b.South);
        var north = boxes.Max(b => b.North);
        var lonRanges = new List<(double West, double East)>();
        foreach (var b in boxes)
        {
            if (b.CrossesAntimeridian)
            {
                lonRanges.Add((b.West, 180));
                lonRanges.Add((-180, b.East));
            }
            else
            {
                lonRanges.Add((b.West, b.East));
            }
        }

        var west = lonRanges.Min(r => r.West);
        var east = lonRanges.Max(r => r.East);
        _conditions.Add(new Condition(
            DriverRank.Geo,
            string.Create(CultureInfo.InvariantCulture, $"SELECT id / {SqliteEntityStore.GeoSlotsPerEntity} AS rid FROM entity_geo WHERE max_lat >= {Parameter(south)} AND min_lat <= {Parameter(north)} AND max_lon >= {Parameter(west)} AND min_lon <= {Parameter(east)}"),
            null));
    }

    private List<long> Terms(IEnumerable<string> iris)
    {
        var terms = new List<long>();
        foreach (var iri in iris)
        {
            if (_termId(iri) is { } term)
            {
                terms.Add(term);
            }
        }

        return terms;
    }

    private string List<T>(IReadOnlyList<T> values) => string.Join(',', values.Select(v => Parameter(v!)));

    private string Parameter(object value)
    {
        var name = "$p" + (_parameters++).ToString(CultureInfo.InvariantCulture);
        _command.Parameters.AddWithValue(name, value);
        return name;
    }

    /// <param name="Rids">A query of the rids that satisfy it.</param>
    /// <param name="Filter">A test of one candidate, given the SQL of its rid, by point lookups; null when only the evaluator can tell.</param>
    /// <param name="Stream">An index table (as d) and condition that yield the rids in order, when it is one key.</param>
    private sealed record Condition(DriverRank Rank, string Rids, Func<string, string>? Filter, (string Table, string Where)? Stream = null);
}
