using System.Globalization;
using System.Text;
using Machi.Broker.Access;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>
/// Turns an <see cref="EntityFilter"/> into the conditions on entities e that find its candidates through the index
/// tables: ids through the entities' key, types and attribute names through entity_types/entity_attrs, q comparisons
/// on a top-level attribute through entity_numbers/entity_strings, geo-queries through the GiST index of entity_geo.
/// The same cuts as <see cref="SqliteQueryPlanner"/>: what SQL cannot decide exactly (idPattern, scopeQ, the
/// geometry itself, the parts of q no index holds) stays with the evaluator, which runs on every candidate; when
/// nothing is left for it (<see cref="Exact"/>) the database pages and counts on its own. Which condition drives is
/// PostgreSQL's planner's choice, from its statistics.
/// </summary>
internal sealed class PostgresQueryPlanner
{
    /// <summary>How far (metres) a geodesic edge of entity_geo may stray from the straight lon/lat edge the
    /// evaluator sees, with edges split to <see cref="PostgresGeo.SegmentDegrees"/>, below 85° of latitude.</summary>
    private const double GeoSlackMeters = 50;

    private readonly NpgsqlCommand _command;
    private readonly Func<string, long?> _termId;
    private readonly List<string> _conditions = [];
    private int _parameters;

    private PostgresQueryPlanner(NpgsqlCommand command, string tenant, Func<string, long?> termId)
    {
        _command = command;
        _termId = termId;
        command.Parameters.Add(new NpgsqlParameter("tenant", NpgsqlDbType.Text) { Value = tenant });
    }

    /// <summary>False when no entity can match (e.g. a type no entity ever had).</summary>
    public bool Satisfiable { get; private set; } = true;

    /// <summary>True when the SQL alone decides the filter, so the evaluator need not run.</summary>
    public bool Exact { get; private set; } = true;

    /// <summary>"FROM entities e WHERE …" of the candidates (all of the matches, when <see cref="Exact"/>).</summary>
    public string FromWhere
    {
        get
        {
            var sql = new StringBuilder("FROM entities e WHERE e.tenant = @tenant");
            foreach (var condition in _conditions)
            {
                sql.Append(" AND ").Append(condition);
            }

            return sql.ToString();
        }
    }

    public static PostgresQueryPlanner Plan(NpgsqlCommand command, string tenant, EntityFilter filter, Func<string, long?> termId, AccessFilter? access = null)
    {
        var planner = new PostgresQueryPlanner(command, tenant, termId);

        // What the caller may see is decided on the entity row, so counts and pages are those of the visible entities.
        if (access is not null)
        {
            planner._conditions.Add(access.Condition(value => planner.Parameter(value)));
        }

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

    private void AddSelectors(IReadOnlyList<EntitySelector>? selectors)
    {
        if (selectors is null || selectors.Count == 0)
        {
            return;
        }

        var alternatives = new List<string>();
        foreach (var selector in selectors)
        {
            var parts = new List<string>();
            if (selector.Ids is { Count: > 0 } ids)
            {
                parts.Add($"e.id = ANY({Parameter(ids.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)})");
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

                parts.Add(KeyCondition("entity_types", "type", terms));
            }

            if (parts.Count == 0)
            {
                // A selector with only an idPattern: every entity is a candidate.
                return;
            }

            alternatives.Add("(" + string.Join(" AND ", parts) + ")");
        }

        if (alternatives.Count == 0)
        {
            Satisfiable = false;
            return;
        }

        _conditions.Add("(" + string.Join(" OR ", alternatives) + ")");
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

        _conditions.Add(KeyCondition("entity_attrs", "name", terms));
    }

    private string KeyCondition(string table, string column, List<long> keys) =>
        $"EXISTS (SELECT 1 FROM {table} x WHERE x.tenant = e.tenant AND x.{column} = ANY({Parameter(keys.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Bigint)}) AND x.rid = e.rid)";

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
                    if (_termId(path.Attribute) is not { } id)
                    {
                        Satisfiable = false;
                        return;
                    }

                    _conditions.Add(KeyCondition("entity_attrs", "name", [id]));
                    break;
                case QComparison { Path: { Names.Count: 1, Members.Count: 0 } path } comparison:
                    AddComparison(path.Attribute, comparison.Operator, comparison.Value);
                    break;
                default:
                    break;
            }
        }
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

        // Stored values are coarsened (prefixes, doubles) in an order-keeping way, so bounds are inclusive.
        string? range = null;
        if (op == QOperator.Equal)
        {
            var from = ((QRange)value).From;
            var to = ((QRange)value).To;
            if (Orderable(from) && Orderable(to) && Key(term, from) is { } low && Key(term, to) is { } high && low.Attr == high.Attr && low.IsText == high.IsText)
            {
                range = $"{Table(low)} v WHERE v.tenant = e.tenant AND v.attr = {Parameter(low.Attr)} AND v.value >= {Parameter(low.Value)} AND v.value <= {Parameter(high.Value)}";
            }
        }
        else if (Orderable(value) && value is not QBoolean && Key(term, value) is { } key)
        {
            var sign = op is QOperator.Greater or QOperator.GreaterOrEqual ? ">=" : "<=";
            range = $"{Table(key)} v WHERE v.tenant = e.tenant AND v.attr = {Parameter(key.Attr)} AND v.value {sign} {Parameter(key.Value)}";
        }

        if (range is not null)
        {
            _conditions.Add($"EXISTS (SELECT 1 FROM {range} AND v.rid = e.rid)");
        }
    }

    private static string Table(IndexKey key) => key.IsText ? "entity_strings" : "entity_numbers";

    private string EqualAny(List<IndexKey> keys)
    {
        var parts = new List<string>();
        foreach (var group in keys.GroupBy(k => (k.Attr, k.IsText)))
        {
            var values = group.Key.IsText
                ? Parameter(group.Select(k => (string)k.Value).Distinct().ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)
                : Parameter(group.Select(k => (double)k.Value).Distinct().ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Double);
            parts.Add($"EXISTS (SELECT 1 FROM {(group.Key.IsText ? "entity_strings" : "entity_numbers")} v WHERE v.tenant = e.tenant AND v.attr = {Parameter(group.Key.Attr)} AND v.value = ANY({values}) AND v.rid = e.rid)");
        }

        return "(" + string.Join(" OR ", parts) + ")";
    }

    /// <summary>The index keys of values compared for equality, or null when one of them is not indexed.</summary>
    private static List<IndexKey>? Keys(long term, IReadOnlyList<QValue> values)
    {
        var keys = new List<IndexKey>();
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
            if (expanded is not null && PostgresValueRows.Text(expanded) != (string)key.Value)
            {
                keys.Add(new IndexKey(term, true, PostgresValueRows.Text(expanded)));
            }
        }

        return keys;
    }

    /// <summary>Whether the evaluator orders this bound as the index does (as <see cref="SqliteQueryPlanner"/> decides).</summary>
    private static bool Orderable(QValue value) => value switch
    {
        QString s => (s.Expanded is null || s.Expanded == s.Value) && !s.Value.Any(c => c >= '\uE000'),
        QUri u => (u.Expanded is null || u.Expanded == u.Value) && !u.Value.Any(c => c >= '\uE000'),
        _ => true,
    };

    /// <summary>The index key of a literal, coarsened as the rows are, or null when no index row holds it.</summary>
    private static IndexKey? Key(long term, QValue value) => value switch
    {
        QNumber n => new IndexKey(term, false, n.Value),
        QString s => new IndexKey(term, true, PostgresValueRows.Text(s.Value)),
        QUri u => new IndexKey(term, true, PostgresValueRows.Text(u.Value)),
        QBoolean b => new IndexKey(term, false, b.Value ? 1.0 : 0.0),
        QDateTime d when NgsiText.TryParseDateTime(d.Text, out var instant) => new IndexKey(-term, false, (double)instant.UtcTicks),
        _ => null,
    };

    private void AddGeo(GeoQuery? geo)
    {
        if (geo is null)
        {
            return;
        }

        Exact = false;
        if (geo.Relation == GeoRelation.Disjoint || (geo.Relation == GeoRelation.Near && geo.MaxDistance is null))
        {
            // Far from or outside a shape: no region bounds the answer.
            return;
        }

        if (_termId(geo.GeoProperty) is not { } term)
        {
            Satisfiable = false;
            return;
        }

        string shape;
        double distance;
        if (geo.Relation == GeoRelation.Near)
        {
            var point = (Point)geo.Geometry;
            if (Math.Abs(point.Y) > 85 - (geo.MaxDistance!.Value / 100_000) || Math.Abs(point.X) > 180)
            {
                return;
            }

            shape = $"ST_SetSRID(ST_MakePoint({Parameter(point.X)}, {Parameter(point.Y)}), 4326)::geography";
            distance = geo.MaxDistance.Value * 1.001 + GeoSlackMeters;
        }
        else
        {
            // Every other relation needs the entity to touch the shape (within: inside it; contains, equals and
            // overlaps: sharing points with it); the shape itself when it is a valid geography, else its envelope.
            var region = PostgresGeo.Wkb(geo.Geometry.IsValid ? geo.Geometry : geo.Geometry.Envelope)
                ?? PostgresGeo.Wkb(geo.Geometry.Envelope);
            if (region is null || Math.Max(Math.Abs(geo.Geometry.EnvelopeInternal.MinY), Math.Abs(geo.Geometry.EnvelopeInternal.MaxY)) > 85)
            {
                return;
            }

            shape = $"{PostgresGeo.Geography(Parameter(region, NpgsqlDbType.Bytea))}";
            distance = GeoSlackMeters;
        }

        var attr = Parameter(term);
        _conditions.Add(string.Create(CultureInfo.InvariantCulture, $"""
            e.rid IN (SELECT g.rid FROM entity_geo g WHERE g.tenant = @tenant AND g.attr = {attr} AND ST_DWithin(g.geog, {shape}, {Parameter(distance)})
                      UNION ALL SELECT g.rid FROM entity_geo g WHERE g.tenant = @tenant AND g.attr = {attr} AND g.geog IS NULL)
            """));
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

    private string Parameter(object value, NpgsqlDbType? type = null)
    {
        var name = "p" + (_parameters++).ToString(CultureInfo.InvariantCulture);
        var parameter = new NpgsqlParameter(name, value);
        if (type is { } t)
        {
            parameter.NpgsqlDbType = t;
        }
        else
        {
            parameter.NpgsqlDbType = value switch
            {
                long => NpgsqlDbType.Bigint,
                double => NpgsqlDbType.Double,
                string => NpgsqlDbType.Text,
                _ => parameter.NpgsqlDbType,
            };
        }

        _command.Parameters.Add(parameter);
        return "@" + name;
    }

    /// <param name="Value">A double (numbers table) or a string (strings table), as the rows store it.</param>
    private readonly record struct IndexKey(long Attr, bool IsText, object Value);
}
