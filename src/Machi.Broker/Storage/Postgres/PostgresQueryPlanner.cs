using System.Globalization;
using Machi.Broker.Access;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>
/// Turns an <see cref="EntityFilter"/> into the SQL that finds its candidates through the index tables: ids through
/// the entities' key, types through entity_types, attribute names through entities.attrs, q comparisons on a top-level
/// attribute through entity_numbers/entity_strings, geo-queries through the GiST index of entity_geo. The same cuts
/// as <see cref="SqliteQueryPlanner"/>: what SQL cannot decide exactly (idPattern, scopeQ, the geometry itself, the
/// parts of q no index holds) stays with the evaluator, which runs on every candidate; when nothing is left for it
/// (<see cref="Exact"/>) the database pages and counts on its own (<see cref="FromWhere"/>). Otherwise the most
/// selective condition drives (<see cref="Phases"/>): its index hands candidates out in its own order, a chunk at a
/// time, and the other conditions are probes on each candidate's rid before its row is read.
/// </summary>
internal sealed class PostgresQueryPlanner
{
    /// <summary>How far (metres) a geodesic edge of entity_geo may stray from the straight lon/lat edge the
    /// evaluator sees, with edges split to <see cref="PostgresGeo.SegmentDegrees"/>, below 85° of latitude.</summary>
    private const double GeoSlackMeters = 50;

    /// <summary>A shape whose box spans more degrees than this is not streamed by distance from its centre (a
    /// circle around a large shape holds far more than the shape).</summary>
    private const double StreamedShapeDegrees = 2;

    /// <summary>
    /// The tail of a probe's subquery on a streamed candidate. OFFSET 0 keeps PostgreSQL from turning the EXISTS into
    /// a hashed subplan, which reads every row the probe's other conditions admit (its estimate for ST_DWithin on a
    /// geography is one row: it hashed the 10,000 entities within 1 km to check 24 candidates).
    /// </summary>
    private const string OneByOne = " OFFSET 0";

    private readonly NpgsqlCommand _command;
    private readonly Func<string, long?> _termId;
    private readonly List<Condition> _conditions = [];
    private string _access = "";
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
    public string FromWhere =>
        "FROM entities e WHERE e.tenant = @tenant" + _access + string.Concat(_conditions.Select(c => " AND " + c.On("e.rid", "")));

    /// <summary>
    /// The statements that hand the candidates out, one after the other (a geo-query's second phase: the entities
    /// whose value is no geography). Each answers rows (rid, key, doc) in its driving index's order — rid, value, or
    /// distance from the query's point (a GiST nearest-first scan, see <see cref="Around"/>) — so no candidate set
    /// is gathered and sorted: a page costs the candidates it reads, however many match. Each takes @chunk and
    /// continues after @after and @key (see <see cref="StreamKey"/>); doc is null for a candidate another condition
    /// or the caller's access rejects, read only for those that pass. A candidate may come twice (an entity with
    /// several matching values), so the reader skips rids it has seen.
    /// </summary>
    public IReadOnlyList<StreamPhase> Phases
    {
        get
        {
            var driver = _conditions.Where(c => c.Stream is not null).MinBy(c => c.Rank);
            var stream = driver?.Stream ?? new RidStream(["SELECT x.rid FROM entities x WHERE x.tenant = @tenant"]);

            // A distance stream around a shape reads a circle around it: the geo condition itself still applies. Around
            // a point (near), the stream's bound is the condition, give or take the evaluator's exact measure.
            var filters = _conditions.Where(c => c != driver || stream is DistanceStream { Decides: false }).Select(c => c.On("k.rid", OneByOne)).ToList();
            var entity = $"(SELECT e.doc FROM entities e WHERE e.tenant = @tenant AND e.rid = k.rid{_access})";
            var doc = filters.Count == 0 ? entity : $"CASE WHEN {string.Join(" AND ", filters)} THEN {entity} END";
            return stream switch
            {
                RidStream rids => [ByRid(rids)],
                ValueStream values => [new StreamPhase(
                    Candidates($"SELECT v.rid, v.value AS key FROM {values.Table} v WHERE {values.Where} AND (v.value, v.rid) > (@key, @after) ORDER BY v.value, v.rid", "k.key, k.rid"),
                    values.IsText ? StreamKey.Text : StreamKey.Number,
                    double.PositiveInfinity,
                    values.Start)],
                DistanceStream distance => [
                    new StreamPhase(
                        Candidates($"SELECT g.rid, {distance.Key} AS key FROM entity_geo g WHERE g.tenant = @tenant AND g.attr = {distance.Attr} AND {distance.Key} >= @key ORDER BY {distance.Key}", "k.key, k.rid"),
                        StreamKey.Distance,
                        distance.Bound,
                        0.0),
                    ByRid(new RidStream([distance.Unindexed]))],
                _ => throw new InvalidOperationException("unknown candidate stream"),
            };

            // A chunk of the driver's rows (rid, key), each with its document when the other conditions keep it.
            string Candidates(string driven, string order) => $"SELECT k.rid, k.key, {doc} FROM ({driven} LIMIT @chunk) k ORDER BY {order}";

            StreamPhase ByRid(RidStream rids) => new(
                Candidates($"SELECT d.rid, NULL::float8 AS key FROM ({string.Join(" UNION ALL ", rids.Arms.Select(a => $"({a} AND x.rid > @after ORDER BY x.rid)"))}) d ORDER BY d.rid", "k.rid"),
                StreamKey.Rid,
                double.PositiveInfinity,
                null);
        }
    }

    public static PostgresQueryPlanner Plan(NpgsqlCommand command, string tenant, EntityFilter filter, Func<string, long?> termId, AccessFilter? access = null)
    {
        var planner = new PostgresQueryPlanner(command, tenant, termId);

        // What the caller may see is decided on the entity row, so counts and pages are those of the visible entities.
        if (access is not null)
        {
            planner._access = " AND " + access.Condition(value => planner.Parameter(value));
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

        var alternatives = new List<List<Condition>>();
        foreach (var selector in selectors)
        {
            var parts = new List<Condition>();
            if (selector.Ids is { Count: > 0 } ids)
            {
                var list = Parameter(ids.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text);
                parts.Add(new Condition(
                    DriverRank.Ids,
                    (rid, tail) => $"EXISTS (SELECT 1 FROM entities i WHERE i.tenant = @tenant AND i.rid = {rid} AND i.id = ANY({list}){tail})",
                    new RidStream([$"SELECT x.rid FROM entities x WHERE x.tenant = @tenant AND x.id = ANY({list})"])));
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

            alternatives.Add(parts);
        }

        if (alternatives.Count == 0)
        {
            Satisfiable = false;
            return;
        }

        if (alternatives.Count == 1)
        {
            _conditions.AddRange(alternatives[0]);
            return;
        }

        // Several selectors: any of them. Their candidates stream together when each is one index key.
        var streams = alternatives.Select(a => a.Count == 1 ? a[0].Stream as RidStream : null).ToList();
        _conditions.Add(new Condition(
            alternatives.Max(a => a.Min(p => p.Rank)),
            (rid, tail) => "(" + string.Join(" OR ", alternatives.Select(a => "(" + string.Join(" AND ", a.Select(p => p.On(rid, tail))) + ")")) + ")",
            streams.All(s => s is not null) ? new RidStream(streams.SelectMany(s => s!.Arms).ToList()) : null));
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

        _conditions.Add(NamesAny(terms));
    }

    /// <summary>
    /// An entity has an attribute named by one of <paramref name="names"/> (entities.attrs): a probe on a rid, or the
    /// entities in rid order (PostgreSQL reads the rid index and checks each row when most entities have one of them,
    /// or the GIN index, sorted, when few have).
    /// </summary>
    private Condition NamesAny(List<long> names)
    {
        var any = Parameter(names.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Bigint);
        return new Condition(
            DriverRank.Attributes,
            (rid, tail) => $"EXISTS (SELECT 1 FROM entities x WHERE x.tenant = @tenant AND x.rid = {rid} AND x.attrs && {any}{tail})",
            new RidStream([$"SELECT x.rid FROM entities x WHERE x.tenant = @tenant AND x.attrs && {any}"]));
    }

    /// <summary>An entity has one of <paramref name="keys"/> in <paramref name="table"/>: a probe on a rid, or the keys' rids merged in rid order.</summary>
    private Condition KeyCondition(DriverRank rank, string table, string column, List<long> keys)
    {
        var each = keys.Select(key => Parameter(key)).ToList();

        // One key (a query's single type) probes by equality, which PostgreSQL descends a little faster than = ANY(array)
        // (~5 % of a type + q chunk, which probes about a hundred candidates).
        var match = each.Count == 1 ? $"= {each[0]}" : $"= ANY({Parameter(keys.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Bigint)})";
        var arms = each.Select(key => $"SELECT x.rid FROM {table} x WHERE x.tenant = @tenant AND x.{column} = {key}").ToList();
        return new Condition(rank, (rid, tail) => $"EXISTS (SELECT 1 FROM {table} x WHERE x.tenant = @tenant AND x.{column} {match} AND x.rid = {rid}{tail})", new RidStream(arms));
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
                    if (_termId(path.Attribute) is not { } id)
                    {
                        Satisfiable = false;
                        return;
                    }

                    _conditions.Add(NamesAny([id]));
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
                _conditions.Add(EqualAny(keys.Distinct().ToList()));
            }

            return;
        }

        // Stored values are coarsened (prefixes, doubles) in an order-keeping way, so bounds are inclusive.
        (IndexKey Key, string Where, object Start)? range = null;
        if (op == QOperator.Equal)
        {
            var from = ((QRange)value).From;
            var to = ((QRange)value).To;
            if (Orderable(from) && Orderable(to) && Key(term, from) is { } low && Key(term, to) is { } high && low.Attr == high.Attr && low.IsText == high.IsText)
            {
                range = (low, $"v.tenant = @tenant AND v.attr = {Parameter(low.Attr)} AND v.value >= {Parameter(low.Value)} AND v.value <= {Parameter(high.Value)}", low.Value);
            }
        }
        else if (Orderable(value) && value is not QBoolean && Key(term, value) is { } key)
        {
            var sign = op is QOperator.Greater or QOperator.GreaterOrEqual ? ">=" : "<=";
            var start = sign == ">=" ? key.Value : key.IsText ? string.Empty : double.NegativeInfinity;
            range = (key, $"v.tenant = @tenant AND v.attr = {Parameter(key.Attr)} AND v.value {sign} {Parameter(key.Value)}", start);
        }

        if (range is { } r)
        {
            var table = Table(r.Key);
            _conditions.Add(new Condition(DriverRank.Range, (rid, tail) => $"EXISTS (SELECT 1 FROM {table} v WHERE {r.Where} AND v.rid = {rid}{tail})", new ValueStream(table, r.Where, r.Key.IsText, r.Start)));
        }
    }

    private static string Table(IndexKey key) => key.IsText ? "entity_strings" : "entity_numbers";

    /// <summary>An entity holds one of the values <paramref name="keys"/>: probes on a rid, or each value's rids merged in rid order.</summary>
    private Condition EqualAny(List<IndexKey> keys)
    {
        var parts = new List<string>();
        foreach (var group in keys.GroupBy(k => (k.Attr, k.IsText)))
        {
            var values = group.Key.IsText
                ? Parameter(group.Select(k => (string)k.Value).ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)
                : Parameter(group.Select(k => (double)k.Value).ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Double);
            parts.Add($"SELECT 1 FROM {Table(group.First())} v WHERE v.tenant = @tenant AND v.attr = {Parameter(group.Key.Attr)} AND v.value = ANY({values})");
        }

        var arms = keys.Select(k => $"SELECT x.rid FROM {Table(k)} x WHERE x.tenant = @tenant AND x.attr = {Parameter(k.Attr)} AND x.value = {Parameter(k.Value)}").ToList();
        return new Condition(DriverRank.Equality, (rid, tail) => "(" + string.Join(" OR ", parts.Select(p => $"EXISTS ({p} AND v.rid = {rid}{tail})")) + ")", new RidStream(arms));
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
        var within = Parameter(distance);
        // A geo condition never stands alone in SQL (the evaluator decides), so it is a probe on each candidate.
        string Touching(string g) => $"SELECT {g}.rid FROM entity_geo {g} WHERE {g}.tenant = @tenant AND {g}.attr = {attr} AND ST_DWithin({g}.geog, {shape}, {within})";
        string Unindexed(string g) => $"SELECT {g}.rid FROM entity_geo {g} WHERE {g}.tenant = @tenant AND {g}.attr = {attr} AND {g}.geog IS NULL";
        _conditions.Add(new Condition(
            DriverRank.Geo,
            (rid, tail) => $"EXISTS (SELECT 1 FROM entity_geo g WHERE g.tenant = @tenant AND g.rid = {rid} AND g.attr = {attr} AND (g.geog IS NULL OR ST_DWithin(g.geog, {shape}, {within})){tail})",
            (CandidateStream?)DistanceFrom(geo, attr, Unindexed("x")) ?? new RidStream([Touching("x"), Unindexed("x")])));
    }

    /// <summary>
    /// The candidates of a geo-query nearest first from its point (near) or from the centre of its shape's box, up to
    /// the distance beyond which none can match; null for a shape too large for a circle around it to be a good
    /// bound. <c>&lt;-&gt;</c> on the sphere is up to 0.5 % off the ellipsoid the evaluator measures on: the bound
    /// allows 1 %.
    /// </summary>
    private DistanceStream? DistanceFrom(GeoQuery geo, string attr, string unindexed)
    {
        if (geo.Relation == GeoRelation.Near)
        {
            var point = (Point)geo.Geometry;
            return Around(attr, point.X, point.Y, geo.MaxDistance!.Value * 1.01 + GeoSlackMeters, unindexed) with { Decides = true };
        }

        var box = geo.Geometry.EnvelopeInternal;
        if (box.Width > StreamedShapeDegrees || box.Height > StreamedShapeDegrees)
        {
            return null;
        }

        var (x, y) = (box.Centre.X, box.Centre.Y);
        var reach = new[] { (box.MinX, box.MinY), (box.MinX, box.MaxY), (box.MaxX, box.MinY), (box.MaxX, box.MaxY) }
            .Max(corner => GeoMath.DistanceMeters(y, x, corner.Item2, corner.Item1));
        return Around(attr, x, y, reach * 1.01 + 2 * GeoSlackMeters, unindexed);
    }

    /// <summary>
    /// The candidates within <paramref name="metres"/> of (x, y), nearest first. Measured in degrees on the lon/lat
    /// plane (the GiST index entity_geo_plane) when a bound in degrees holds them all (<see cref="PlaneDegrees"/>):
    /// PostGIS finds the nearest points on the plane about ten times faster than on the sphere (24 of 1,000,000: 0.09
    /// against 0.9 ms). Degrees east shrink with latitude, so such a page comes nearest first only roughly (NGSI-LD
    /// asks no order of a geo-query; SQLite answers in its R*Tree's), and the bound holds a little more than the circle:
    /// the evaluator decides on each candidate.
    /// </summary>
    private DistanceStream Around(string attr, double x, double y, double metres, string unindexed)
    {
        var point = $"ST_SetSRID(ST_MakePoint({Parameter(x)}, {Parameter(y)}), 4326)";
        return PlaneDegrees(x, y, metres) is { } degrees
            ? new DistanceStream(attr, $"g.geog::geometry <-> {point}", degrees, unindexed)
            : new DistanceStream(attr, $"g.geog <-> {point}::geography", metres, unindexed);
    }

    /// <summary>
    /// How far, in degrees on the lon/lat plane, a point can be from (x, y) and still lie within
    /// <paramref name="metres"/> of it on the ellipsoid: a degree spans at least 110,574 m along a meridian and
    /// 111,319·cos φ m along a parallel, φ the farthest latitude a geodesic that short reaches (1 % more for the
    /// evaluator's own measure). Null near a pole or the antimeridian, or for a reach of more than 200 km, where the
    /// bound would hold far more than the circle.
    /// </summary>
    internal static double? PlaneDegrees(double x, double y, double metres)
    {
        const double MeridianDegree = 110_574;
        const double EquatorDegree = 111_319;
        var farthest = Math.Abs(y) + (metres / MeridianDegree);
        if (metres > 200_000 || farthest > 80)
        {
            return null;
        }

        var degrees = metres * 1.01 / Math.Min(MeridianDegree, EquatorDegree * Math.Cos(farthest * Math.PI / 180));
        return Math.Abs(x) + degrees < 180 ? degrees : null;
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

    /// <summary>
    /// A condition on candidates: its rank as a driver (most selective first), its SQL on a rid expression (each
    /// subquery ending with the tail it is given), and its candidates in an index's order when it can drive.
    /// </summary>
    private sealed record Condition(DriverRank Rank, Func<string, string, string> On, CandidateStream? Stream);

    private abstract record CandidateStream;

    /// <summary>Candidates in rid order: each arm ("SELECT x.rid FROM … x WHERE …") in rid order from its index, merged.</summary>
    private sealed record RidStream(IReadOnlyList<string> Arms) : CandidateStream;

    /// <summary>Candidates in (value, rid) order from a value table's index (alias v), as a range reads it, from its
    /// lower bound <paramref name="Start"/> (PostgreSQL starts the scan where the continuation says, not at the bound).</summary>
    private sealed record ValueStream(string Table, string Where, bool IsText, object Start) : CandidateStream;

    /// <summary>Candidates in the order of <paramref name="Key"/>, a distance of entity_geo g's geography from a point;
    /// none beyond <paramref name="Bound"/> (in the key's unit) matches but those of <paramref name="Unindexed"/> (an arm
    /// of the values that are no geography), which follow. <paramref name="Decides"/>: the bound is the geo condition
    /// (near), which needs no probe of its own.</summary>
    private sealed record DistanceStream(string Attr, string Key, double Bound, string Unindexed, bool Decides = false) : CandidateStream;
}

/// <summary>What orders a stream's rows, and so what continues it after a chunk.</summary>
internal enum StreamKey
{
    /// <summary>rid: continue after @after.</summary>
    Rid,

    /// <summary>(numeric value, rid): continue after (@key, @after).</summary>
    Number,

    /// <summary>(text value, rid): continue after (@key, @after).</summary>
    Text,

    /// <summary>(distance, rid): continue from @key, the last distance read, whose rows come again (a nearest-first scan
    /// cannot start after a rid); the reader takes a chunk's rows only up to its last distance.</summary>
    Distance,
}

/// <summary>One statement of candidates (see <see cref="PostgresQueryPlanner.Phases"/>): its first @key is
/// <paramref name="Start"/>, and past a key of <paramref name="StopBeyond"/> no row can match.</summary>
internal sealed record StreamPhase(string Sql, StreamKey Key, double StopBeyond, object? Start)
{
    /// <summary>@key at its start, or null for a stream in rid order (it continues after @after alone).</summary>
    public NpgsqlParameter? KeyParameter() => Start is null ? null
        : new NpgsqlParameter("key", Key == StreamKey.Text ? NpgsqlDbType.Text : NpgsqlDbType.Double) { Value = Start };
}
