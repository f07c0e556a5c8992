using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Storage;
using Machi.Ngsi.Model;

namespace Machi.Broker.Subscriptions;

/// <summary>Which attributes one change created, updated and deleted (expanded names).</summary>
internal sealed record AttributeChanges(IReadOnlySet<string> Created, IReadOnlySet<string> Updated, IReadOnlySet<string> Deleted)
{
    /// <summary>Compares the states before and after a change, attribute by attribute (every datasetId instance).</summary>
    public static AttributeChanges Between(Entity? before, Entity? after)
    {
        var created = new HashSet<string>(StringComparer.Ordinal);
        var updated = new HashSet<string>(StringComparer.Ordinal);
        var deleted = new HashSet<string>(StringComparer.Ordinal);
        if (after is not null)
        {
            foreach (var (name, instances) in after.Attributes)
            {
                if (before is null || !before.Attributes.TryGetValue(name, out var old))
                {
                    created.Add(name);
                }
                else if (!SameInstances(old, instances))
                {
                    updated.Add(name);
                }
            }
        }

        if (before is not null)
        {
            foreach (var name in before.Attributes.Keys)
            {
                if (after is null || !after.Attributes.ContainsKey(name))
                {
                    deleted.Add(name);
                }
            }
        }

        return new AttributeChanges(created, updated, deleted);
    }

    /// <summary>An update writes modifiedAt even when the value is the same: NGSI-LD counts it as an update.</summary>
    private static bool SameInstances(List<AttributeInstance> a, List<AttributeInstance> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        for (var i = 0; i < a.Count; i++)
        {
            var x = a[i];
            var y = b.Find(o => o.DatasetId == x.DatasetId);
            if (y is null || x.Kind != y.Kind || x.ModifiedAt != y.ModifiedAt || x.ObservedAt != y.ObservedAt || x.UnitCode != y.UnitCode
                || !x.PayloadUtf8.SequenceEqual(y.PayloadUtf8))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>
/// Decides whether a committed change concerns a subscription (clauses 5.8.6, 5.11 and the notificationTrigger of
/// 5.2.12) and renders the entity the notification carries. Pure: no I/O, no clock.
/// </summary>
internal static class NotificationMatcher
{
    /// <summary>The attributes that triggered the subscription, or null when the change does not concern it.</summary>
    public static AttributeChanges? Match(Subscription subscription, ChangeKind kind, Entity? before, Entity? after)
    {
        var triggers = subscription.Triggers;
        if (kind == ChangeKind.Deleted)
        {
            // A deleted entity is judged by the state it had.
            return (triggers & Triggers.EntityDeleted) != 0 && before is not null && subscription.Filter.Matches(before)
                ? new AttributeChanges(new HashSet<string>(), new HashSet<string>(), before.Attributes.Keys.ToHashSet(StringComparer.Ordinal))
                : null;
        }

        if (after is null || !subscription.Filter.Matches(after))
        {
            return null;
        }

        var changes = AttributeChanges.Between(before, after);
        var watched = subscription.WatchedAttributes;
        bool Watched(IReadOnlySet<string> names) => watched is null ? names.Count > 0 : names.Overlaps(watched);

        var fires = kind == ChangeKind.Created
            ? (triggers & Triggers.EntityCreated) != 0 && (watched is null || Watched(changes.Created))
            : (triggers & Triggers.EntityUpdated) != 0 && (Watched(changes.Created) || Watched(changes.Updated) || Watched(changes.Deleted));
        fires |= (triggers & Triggers.AttributeCreated) != 0 && Watched(changes.Created);
        fires |= (triggers & Triggers.AttributeUpdated) != 0 && Watched(changes.Updated);
        fires |= (triggers & Triggers.AttributeDeleted) != 0 && Watched(changes.Deleted);
        return fires ? changes : null;
    }

    /// <summary>
    /// The entity as the notification shows it: format, attributes, sysAttrs and lang of the subscription, names
    /// compacted with its @context; with showChanges the previous payload of updated attributes, and deleted
    /// attributes as NGSI-LD Null (clause 5.2.1) when attributeDeleted triggered.
    /// </summary>
    public static JsonObject Render(Subscription subscription, Entity entity, Entity? before, AttributeChanges? changes)
    {
        var settings = subscription.Notification;
        var options = new RenderOptions(subscription.Context)
        {
            Format = settings.Format,
            SysAttrs = settings.SysAttrs,
            Attrs = settings.Attributes,
            Lang = settings.Lang,
            IncludeContext = false,
        };
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, EntityRenderer.WriterOptions))
        {
            EntityRenderer.WriteEntity(writer, entity, options);
        }

        var rendered = JsonNode.Parse(buffer.WrittenSpan)!.AsObject();
        if (before is null || changes is null || settings.Format == Representation.KeyValues)
        {
            return rendered;
        }

        bool Shown(string name) => settings.Attributes is null || settings.Attributes.Contains(name);
        if ((subscription.Triggers & Triggers.AttributeDeleted) != 0)
        {
            foreach (var name in changes.Deleted.Where(Shown))
            {
                var old = before.Attributes[name][0];
                var member = AttributeKinds.PayloadMember(old.Kind);
                var deleted = new JsonObject { ["type"] = old.Kind.ToString(), [member] = DeletedMarker(old.Kind) };
                if (settings.ShowChanges)
                {
                    deleted["previous" + char.ToUpperInvariant(member[0]) + member[1..]] = JsonNode.Parse(old.PayloadUtf8);
                }

                rendered[subscription.Context.CompactIri(name)] = deleted;
            }
        }

        if (settings.ShowChanges)
        {
            foreach (var name in changes.Updated.Where(Shown))
            {
                if (rendered[subscription.Context.CompactIri(name)] is JsonObject current && before.Attributes.TryGetValue(name, out var old) && old.Count > 0)
                {
                    var member = AttributeKinds.PayloadMember(old[0].Kind);
                    current["previous" + char.ToUpperInvariant(member[0]) + member[1..]] = JsonNode.Parse(old[0].PayloadUtf8);
                }
            }
        }

        return rendered;
    }

    /// <summary>A deleted entity: its id and type, and when it was deleted.</summary>
    public static JsonObject RenderDeleted(Subscription subscription, Entity before, DateTimeOffset at)
    {
        var types = before.Types.Select(t => subscription.Context.CompactIri(t)).ToList();
        return new JsonObject
        {
            ["id"] = before.Id,
            ["type"] = types.Count == 1 ? JsonValue.Create(types[0]) : new JsonArray([.. types.Select(t => JsonValue.Create(t))]),
            ["deletedAt"] = NgsiText.FormatDateTime(at),
        };
    }

    private static JsonNode DeletedMarker(AttributeKind kind) => kind == AttributeKind.LanguageProperty
        ? new JsonObject { ["@none"] = NgsiText.NullUri }
        : JsonValue.Create(NgsiText.NullUri);
}
