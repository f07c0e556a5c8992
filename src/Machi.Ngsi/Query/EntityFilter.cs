using System.Text.RegularExpressions;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Model;

namespace Machi.Ngsi.Query;

/// <summary>
/// One entry of the "entities" list of a query or subscription (EntitySelector, clause 5.2.33): the entity must
/// have one of the ids (when given), an id matching the pattern (when given) and types satisfying the type
/// expression (when given).
/// </summary>
public sealed record EntitySelector(IReadOnlyList<string>? Ids, Regex? IdPattern, TypeExpression? Type)
{
    /// <summary>Longest idPattern accepted; patterns are compiled with the linear-time engine, whose set-up cost grows with the pattern.</summary>
    public const int MaxPatternLength = 1024;

    /// <summary>Compiles an idPattern with the non-backtracking engine: matching time is linear in the id, with no timeout needed.</summary>
    /// <exception cref="NgsiException">BadRequestData: not a regular expression the engine can run, or too long.</exception>
    public static Regex CompileIdPattern(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length == 0 || pattern.Length > MaxPatternLength)
        {
            throw NgsiException.BadData($"idPattern must be a regular expression of 1 to {MaxPatternLength} characters.");
        }

        try
        {
            return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException ex)
        {
            throw NgsiException.BadData($"idPattern is not a valid regular expression ({ex.Message}).");
        }
        catch (NotSupportedException ex)
        {
            throw NgsiException.BadData($"idPattern uses a construct the linear-time engine does not support ({ex.Message}).");
        }
    }

    public bool Matches(Entity entity)
    {
        ArgumentNullException.ThrowIfNull(entity);
        if (Ids is { } ids && !ids.Contains(entity.Id))
        {
            return false;
        }

        if (IdPattern is { } pattern && !pattern.IsMatch(entity.Id))
        {
            return false;
        }

        return Type is null || Type.Matches(entity.Types);
    }
}

/// <summary>
/// Everything that decides whether an entity is in the result of a query (GET /entities, POST
/// /entityOperations/query) or concerns a subscription: selectors (ORed), attrs (the entity has at least one),
/// q, geo-query and scope query, all with names already expanded. Absent parts do not restrict.
/// </summary>
public sealed record EntityFilter
{
    private readonly QExpression? _q;
    private CompiledQuery? _compiled;

    /// <summary>EntitySelectors, ORed; null or empty: any entity.</summary>
    public IReadOnlyList<EntitySelector>? Selectors { get; init; }

    /// <summary>Expanded attribute names; the entity must have at least one. Null or empty: no condition.</summary>
    public IReadOnlyList<string>? Attrs { get; init; }

    /// <summary>The q expression with expanded names (<see cref="QExpressions.Expand"/>).</summary>
    public QExpression? Q
    {
        get => _q;
        init
        {
            _q = value;
            _compiled = value is null ? null : new CompiledQuery(value);
        }
    }

    public GeoQuery? Geo { get; init; }

    public ScopeQuery? Scope { get; init; }

    public bool Matches(Entity entity)
    {
        ArgumentNullException.ThrowIfNull(entity);
        return MatchesSelectors(entity) && HasAnyAttribute(entity)
            && (_compiled is null || _compiled.Matches(entity))
            && (Scope is null || Scope.Matches(entity.Scope))
            && (Geo is null || MatchesGeo(entity, Geo));
    }

    private bool MatchesSelectors(Entity entity)
    {
        if (Selectors is not { Count: > 0 } selectors)
        {
            return true;
        }

        foreach (var selector in selectors)
        {
            if (selector.Matches(entity))
            {
                return true;
            }
        }

        return false;
    }

    private bool HasAnyAttribute(Entity entity)
    {
        if (Attrs is not { Count: > 0 } attrs)
        {
            return true;
        }

        foreach (var name in attrs)
        {
            if (entity.Attributes.ContainsKey(name))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Any instance (datasetId) of the GeoProperty may satisfy the geo-query.</summary>
    private static bool MatchesGeo(Entity entity, GeoQuery geo)
    {
        if (!entity.Attributes.TryGetValue(geo.GeoProperty, out var instances))
        {
            return false;
        }

        foreach (var instance in instances)
        {
            if (instance.Kind != AttributeKind.GeoProperty || instance.IsNullMarker)
            {
                continue;
            }

            NetTopologySuite.Geometries.Geometry geometry;
            try
            {
                // From the stored bytes: parsing them into a node tree first would also make the response copy
                // the tree instead of the bytes.
                geometry = GeoJsonGeometry.ParseUtf8(instance.PayloadUtf8);
            }
            catch (NgsiException)
            {
                // Stored before validation was as strict as now: such a value matches no geo-query.
                continue;
            }

            if (geo.Matches(geometry))
            {
                return true;
            }
        }

        return false;
    }

    public bool Equals(EntityFilter? other) =>
        other is not null && Equals(Selectors, other.Selectors) && Equals(Attrs, other.Attrs) && Equals(_q, other._q)
        && Equals(Geo, other.Geo) && Equals(Scope, other.Scope);

    public override int GetHashCode() => HashCode.Combine(Selectors, Attrs, _q, Geo, Scope);
}
