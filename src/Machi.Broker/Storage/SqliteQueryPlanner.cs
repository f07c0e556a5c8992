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
/// entities' unique key, types through entity_types, attribute names, q comparisons on a top-level attribute and
/// geo-queries through the in-memory indexes (<see cref="MemoryQueryIndex"/>), whose candidates the SQL
/// reads a part at a time as a JSON array of rids ($rids). What SQL cannot decide exactly
/// (idPattern, scopeQ, the geometry itself, the parts of q no index holds) stays with the evaluator, which runs
/// on every candidate; when nothing is left for it, the database pages and counts on its own.
/// </summary>
internal sealed class SqliteQueryPlanner
{
    private readonly SqliteCommand _command;
    private readonly string _tenant;
    private readonly MemoryQueryIndex _memory;
    private readonly Func<string, long?> _termId;
    private readonly List<Condition> _conditions = [];
    private string _access = "";
    private int _parameters;

    private SqliteQueryPlanner(SqliteCommand command, string tenant, MemoryQueryIndex memory, Func<string, long?> termId)
    {
        _command = command;
        _tenant = tenant;
        _memory = memory;
        _termId = termId;
        command.Parameters.AddWithValue("$tenant", tenant);
    }

    /// <summary>False when no entity can match (e.g. a type no entity ever had).</summary>
    public bool Satisfiable { get; private set; } = true;

    /// <summary>True when the SQL alone decides the filter, so the evaluator need not run.</summary>
    public bool Exact { get; private set; } = true;

    /// <summary>
    /// "SELECT e.rid, e.doc …" of the candidates for the evaluator, in the driving index's own order (rid order
    /// for one key, value order for a range, rid order for a box): no candidate set is gathered and sorted
    /// first (but a geo-query's), so a page costs the candidates it reads, however many there are. The order is the
    /// same for the same data, so pages follow each other; a candidate may come twice (two values in a range), so
    /// the reader skips rids it has seen. When an in-memory index drives (<see cref="Candidates"/>), the statement
    /// reads the rids bound as $rids, in their order, and runs once for each part of them.
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
            if (driver.Memory is not null)
            {
                return $"SELECT e.rid, e.doc FROM json_each($rids) d CROSS JOIN entities e ON e.rid = d.value WHERE +e.tenant = $tenant{Filters(others, "d.value")}{_access}";
            }

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

    /// <summary>The candidates of the driving condition when an in-memory index holds it (read them into $rids of <see cref="Streamed"/>).</summary>
    public IRidSource? Candidates => Driver()?.Driver.Memory?.Invoke();

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
    public static SqliteQueryPlanner Plan(SqliteCommand command, string tenant, EntityFilter filter, MemoryQueryIndex memory, Func<string, long?> termId, AccessFilter? access = null)
    {
        var planner = new SqliteQueryPlanner(command, tenant, memory, termId);
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

        AddNames(terms);
    }

    /// <summary>Entities with any of the attribute names <paramref name="terms"/>: candidates from memory when it drives, else the evaluator's to check.</summary>
    private void AddNames(List<long> terms)
    {
        Exact = false;
        _conditions.Add(InMemory(DriverRank.Attributes, () => _memory.Names(_tenant, terms)));
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

        AddNames([term]);
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
        if (range is { } r)
        {
            // Left to the evaluator when it does not drive.
            _conditions.Add(InMemory(DriverRank.Range, () => _memory.Values(_tenant, [r])));
        }
    }

    /// <summary>Any of the values, a range each, one after another (a candidate of two is read twice and skipped once); left to the evaluator when it does not drive.</summary>
    private Condition EqualAny(List<(long Key, object Value)> keys)
    {
        var ranges = keys.Select(k => ValueRange.Equal(k.Key, IndexValue.Of(k.Value))).Distinct().ToList();
        return InMemory(DriverRank.Equality, () => _memory.Values(_tenant, ranges));
    }

    private static Condition InMemory(DriverRank rank, Func<IRidSource> candidates) => new(rank, null, null, Memory: candidates);

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

    private static ValueRange? Between(long term, QValue from, QValue to)
    {
        if (!Orderable(from) || !Orderable(to) || Key(term, from) is not { } low || Key(term, to) is not { } high || low.Key != high.Key || ClassOf(low.Value) != ClassOf(high.Value))
        {
            return null;
        }

        return new ValueRange(low.Key, IndexValue.Of(low.Value), true, IndexValue.Of(high.Value), true);
    }

    // One-sided comparisons get the other side from the index's ordering of classes (numbers before text), so a
    // numeric bound never sweeps in strings and the scan stays inside one class.
    private static ValueRange? Bound(long term, QOperator op, QValue value)
    {
        if (!Orderable(value) || Key(term, value) is not { } key || value is QBoolean)
        {
            return null;
        }

        var bound = IndexValue.Of(key.Value);
        var inclusive = op is QOperator.GreaterOrEqual or QOperator.LessOrEqual;
        return (op is QOperator.Greater or QOperator.GreaterOrEqual, bound.IsText) switch
        {
            (true, false) => new ValueRange(key.Key, bound, inclusive, IndexValue.FirstText, false),
            (true, true) => new ValueRange(key.Key, bound, inclusive, null, false),
            (false, true) => new ValueRange(key.Key, IndexValue.FirstText, true, bound, inclusive),
            _ => new ValueRange(key.Key, null, false, bound, inclusive), // numbers come first: from the attribute's first value
        };
    }

    /// <summary>
    /// Whether the index orders this bound as the evaluator does. Both compare text by UTF-16 code units; a bound the
    /// evaluator may compare in its expanded form (a vocab term) is left to it alone.
    /// </summary>
    private static bool Orderable(QValue value) => value switch
    {
        QString s => s.Expanded is null || s.Expanded == s.Value,
        QUri u => u.Expanded is null || u.Expanded == u.Value,
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
        _conditions.Add(InMemory(DriverRank.Geo, () => _memory.Boxes(_tenant, west, south, east, north)));
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

    /// <param name="Rids">A query of the rids that satisfy it (null: an in-memory index holds them).</param>
    /// <param name="Filter">A test of one candidate, given the SQL of its rid, by point lookups; null when only the evaluator can tell.</param>
    /// <param name="Stream">An index table (as d) and condition that yield the rids in order, when it is one key.</param>
    /// <param name="Memory">The candidates from an in-memory index, when it holds them.</param>
    private sealed record Condition(DriverRank Rank, string? Rids, Func<string, string>? Filter, (string Table, string Where)? Stream = null, Func<IRidSource>? Memory = null);
}
