using System.Globalization;
using System.Text.Json;
using Machi.Broker.Http;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Http;

namespace Machi.Broker.Query;

/// <summary>How Linked Entities come back (clause 4.5.23): as entities of their own beside the Linking Entities, or inside them.</summary>
internal enum JoinMode
{
    Flat,
    Inline,
}

/// <summary>
/// Linked Entity retrieval (clause 4.5.23: join, joinLevel, containedBy) for entity retrieval and queries. The entities a
/// returned entity's Relationships name are read level by level — by id, here and at the context sources registered for
/// them, through the same access rules as the request itself, so a Linked Entity the caller may not see stays out — up
/// to joinLevel (default 1).
/// Entities named in containedBy, or met before, are not read again; that ends cycles and lets a peer broker that
/// forwards a join say what it already holds.
/// </summary>
internal sealed record EntityJoin(JoinMode Mode, int Level, IReadOnlySet<string> ContainedBy)
{
    /// <summary>At most this many Linked Entities are read for one response; a deeper or wider graph is cut there.</summary>
    public const int MaxLinked = 1000;

    private const int IdsPerQuery = 100;

    /// <summary>join=flat|inline, joinLevel=N, containedBy=id,…; null without join.</summary>
    public static EntityJoin? FromUrl(IQueryCollection query) =>
        Parse(RequestOptions.Single(query, "join"), RequestOptions.Single(query, "joinLevel"), RequestOptions.Single(query, "containedBy")?.Split(',', StringSplitOptions.TrimEntries));

    /// <summary>The same from a Query body's join, joinLevel and containedBy members.</summary>
    public static EntityJoin? FromBody(JsonElement body)
    {
        string? Member(string name) => body.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Number => v.GetRawText(),
                _ => throw NgsiException.BadData($"{name} must be a string{(name == "joinLevel" ? " or a number" : string.Empty)}."),
            }
            : null;

        string[]? containedBy = null;
        if (body.TryGetProperty("containedBy", out var list) && list.ValueKind != JsonValueKind.Null)
        {
            containedBy = list.ValueKind switch
            {
                JsonValueKind.Array => list.EnumerateArray().Select(i => i.ValueKind == JsonValueKind.String ? i.GetString()! : string.Empty).ToArray(),
                JsonValueKind.String => list.GetString()!.Split(',', StringSplitOptions.TrimEntries),
                _ => throw NgsiException.BadData("containedBy must be an array of entity ids."),
            };
        }

        return Parse(Member("join"), Member("joinLevel"), containedBy);
    }

    private static EntityJoin? Parse(string? join, string? level, string[]? containedBy)
    {
        if (join is null)
        {
            return null;
        }

        var mode = join switch
        {
            "flat" => JoinMode.Flat,
            "inline" => JoinMode.Inline,
            _ => throw NgsiException.BadData($"join must be flat or inline, not '{EntityParser.Truncate(join)}'."),
        };
        var levels = 1;
        if (level is not null && (!int.TryParse(level, NumberStyles.None, CultureInfo.InvariantCulture, out levels) || levels < 1))
        {
            throw NgsiException.BadData("joinLevel must be a whole number ≥ 1.");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in containedBy ?? [])
        {
            seen.Add(NgsiText.IsUri(id) ? id : throw NgsiException.BadData($"containedBy: '{EntityParser.Truncate(id)}' is not a URI."));
        }

        return new EntityJoin(mode, levels, seen);
    }

    /// <summary>
    /// Reads the Linked Entities of <paramref name="roots"/> (following the Relationship instances the response shows)
    /// and returns what to write: for flat, the roots then every Linked Entity once, and the render settings as they
    /// were; for inline, the roots, and render settings that write each Linked Entity into its Relationship.
    /// </summary>
    /// <param name="read">Reads the entities with the given ids that the caller may see (here and at context sources).</param>
    public async Task<(IReadOnlyList<Entity> Entities, RenderOptions Render)> ApplyAsync(
        Func<IReadOnlyList<string>, Task<IReadOnlyList<Entity>>> read, IReadOnlyList<Entity> roots, RenderOptions render)
    {
        var known = new Dictionary<string, Entity>(StringComparer.Ordinal);
        foreach (var root in roots)
        {
            known.TryAdd(root.Id, root);
        }

        var asked = new HashSet<string>(ContainedBy, StringComparer.Ordinal);
        asked.UnionWith(known.Keys);
        var linked = new List<Entity>();
        IReadOnlyList<Entity> frontier = roots;
        for (var level = 0; level < Level && frontier.Count > 0 && linked.Count < MaxLinked; level++)
        {
            var wanted = new List<string>();
            foreach (var entity in frontier)
            {
                foreach (var (name, instances) in entity.Attributes)
                {
                    foreach (var instance in instances)
                    {
                        // The roots' Relationships as the response shows them; below them, every Relationship.
                        if (level > 0 || render.ShowsInstance(name, instance))
                        {
                            wanted.AddRange(InlineJoin.Targets(instance).Where(asked.Add));
                        }
                    }
                }
            }

            var found = new List<Entity>();
            foreach (var chunk in wanted.Take(MaxLinked - linked.Count).Chunk(IdsPerQuery))
            {
                found.AddRange(await read(chunk).ConfigureAwait(false));
            }

            foreach (var entity in found)
            {
                known.TryAdd(entity.Id, entity);
            }

            linked.AddRange(found);
            frontier = found;
        }

        return Mode == JoinMode.Flat
            ? ([.. roots, .. linked], render)
            : (roots, render with { Inline = new InlineJoin(known, Level) });
    }
}
