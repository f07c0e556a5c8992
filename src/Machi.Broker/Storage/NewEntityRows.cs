using System.Buffers;
using System.Text.Json;
using Machi.Broker.Access;
using Machi.Ngsi.Model;

namespace Machi.Broker.Storage;

/// <summary>
/// An entity a write stores when none exists yet (create, upsert), with what storing it writes that costs the single
/// writer most and does not depend on the database: its stored form, access marks, and for each attribute instance
/// its name, kind, times and payload. All of it is worked out on the request's thread when the write is made, so the
/// writer mostly binds and steps.
/// <para>
/// Everything is held in a few arrays, and the parsed <see cref="Entity"/> can be let go once a store has taken what it
/// needs (<see cref="Release"/>): a queued write lives until the writer reaches it and its commit is on disk, long
/// enough for the garbage collector to copy whatever it keeps alive into older generations, and a parsed entity is
/// ~40 objects (measured: a 64 MB gen0 budget, which let them die young, made batch upserts ~20 % cheaper). When the
/// entity turns out to exist after all (an upsert that replaces), <see cref="Entity"/> decodes it again from
/// <see cref="Doc"/>.
/// </para>
/// </summary>
internal sealed class NewEntityRows
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_bytes;

    [ThreadStatic]
    private static List<IndexedValue>? t_values;

    private Entity? _entity;

    // The instances' payloads (UTF-8 JSON), one after the other.
    private readonly byte[] _bytes;
    private readonly InstanceRow[] _instances;

    private NewEntityRows(Entity entity)
    {
        _entity = entity;
        Id = entity.Id;
        Types = [.. entity.Types];
        CreatedAt = entity.CreatedAt.UtcTicks;
        ModifiedAt = entity.ModifiedAt.UtcTicks;
        Doc = EntityCodec.Encode(entity);
        Access = EntityAccess.Of(entity);
        TypesJson = JsonSerializer.Serialize(entity.Types);
        Names = new string[entity.Attributes.Count];
        var count = 0;
        foreach (var (_, instances) in entity.Attributes)
        {
            count += instances.Count;
        }

        _instances = new InstanceRow[count];
        var buffer = t_bytes ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        var name = 0;
        var ordinal = 0;
        foreach (var (attribute, instances) in entity.Attributes)
        {
            Names[name] = attribute;
            foreach (var instance in instances)
            {
                buffer.Write(instance.PayloadUtf8);
                var observed = NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o.UtcTicks : (long?)null;
                _instances[ordinal++] = new InstanceRow(name, instance.Kind, instance.ModifiedAt.UtcTicks, observed, buffer.WrittenCount);
            }

            name++;
        }

        _bytes = buffer.WrittenSpan.ToArray();
    }

    /// <summary>One instance: its attribute (index into <see cref="Names"/>), and where its payload ends in <see cref="_bytes"/>.</summary>
    private readonly record struct InstanceRow(int Name, AttributeKind Kind, long ModifiedAt, long? ObservedAt, int PayloadEnd);

    public string Id { get; }

    /// <summary>The types, expanded.</summary>
    public string[] Types { get; }

    /// <summary>The attribute names, expanded, in the entity's order.</summary>
    public string[] Names { get; }

    /// <summary>The entity's createdAt in UTC ticks.</summary>
    public long CreatedAt { get; }

    /// <summary>The entity's modifiedAt in UTC ticks.</summary>
    public long ModifiedAt { get; }

    /// <summary>The entity in <see cref="EntityCodec"/>'s form.</summary>
    public byte[] Doc { get; }

    public EntityAccess Access { get; }

    /// <summary>The types as a JSON array (the history's entity row).</summary>
    public string TypesJson { get; }

    /// <summary>The number of attribute instances.</summary>
    public int InstanceCount => _instances.Length;

    /// <summary>The entity: as parsed until <see cref="Release"/>, then decoded again from <see cref="Doc"/> when asked for.</summary>
    public Entity Entity => _entity ??= EntityCodec.Decode(Doc);

    public static NewEntityRows Of(Entity entity) => new(entity);

    /// <summary>The entity without attributes (id, types, times), for a writer that takes the rest from these rows.</summary>
    public Entity Shell() => new(Id, [.. Types])
    {
        CreatedAt = new DateTimeOffset(CreatedAt, TimeSpan.Zero),
        ModifiedAt = new DateTimeOffset(ModifiedAt, TimeSpan.Zero),
    };

    /// <summary>Lets the parsed entity go: a store calls this once it has taken from it what its writer needs.</summary>
    public void Release() => _entity = null;

    /// <summary>The attribute name of the <paramref name="ordinal"/>-th instance in the entity's order.</summary>
    public string Name(int ordinal) => Names[_instances[ordinal].Name];

    public AttributeKind Kind(int ordinal) => _instances[ordinal].Kind;

    /// <summary>The instance's modifiedAt in UTC ticks.</summary>
    public long InstanceModifiedAt(int ordinal) => _instances[ordinal].ModifiedAt;

    /// <summary>The observedAt of the <paramref name="ordinal"/>-th instance in UTC ticks, null when it has none.</summary>
    public long? ObservedAt(int ordinal) => _instances[ordinal].ObservedAt;

    /// <summary>The payload of the <paramref name="ordinal"/>-th instance as UTF-8 JSON.</summary>
    public ReadOnlySpan<byte> Payload(int ordinal)
    {
        var start = ordinal == 0 ? 0 : _instances[ordinal - 1].PayloadEnd;
        return _bytes.AsSpan(start, _instances[ordinal].PayloadEnd - start);
    }

    /// <summary>
    /// The entity's value index entries (<see cref="EntityIndexRows.AddValues(Entity, ICollection{IndexedValue})"/>) and
    /// geo boxes (<see cref="EntityIndexRows.Boxes(Entity)"/>), for a writer that keeps them in memory: worked out once,
    /// by <see cref="PrepareIndexEntries"/> on the request's thread when a store calls it, else when first asked for.
    /// </summary>
    public IndexEntries Index => _index ??= new(Values(), Boxes());

    private IndexEntries? _index;

    /// <summary>Works out <see cref="Index"/> now, on the calling thread.</summary>
    public void PrepareIndexEntries() => _ = Index;

    private NewIndexValue[] Values()
    {
        var rows = t_values ??= [];
        rows.Clear();
        for (var i = 0; i < _instances.Length; i++)
        {
            EntityIndexRows.AddValues(Name(i), Kind(i), Payload(i), rows);
        }

        // Numbers unboxed: the entries wait in the writer's queue, and boxes would be objects for the collector to copy.
        var values = new NewIndexValue[rows.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = new(rows[i].Attribute, rows[i].Kind, IndexValue.Of(rows[i].Value));
        }

        return values;
    }

    private List<IndexedBox> Boxes()
    {
        var boxes = new List<IndexedBox>();
        var box = new EntityIndexRows.BoxBuilder();
        for (var i = 0; i < _instances.Length; i++)
        {
            if (Kind(i) == AttributeKind.GeoProperty)
            {
                box.Add(Payload(i));
            }

            // Instances of one name are adjacent: a name's box is done at its last instance.
            if (i == _instances.Length - 1 || _instances[i + 1].Name != _instances[i].Name)
            {
                box.AddTo(boxes, Name(i));
            }
        }

        return boxes;
    }
}

/// <summary>A new entity's value index entries and geo boxes (<see cref="NewEntityRows.Index"/>).</summary>
internal sealed record IndexEntries(NewIndexValue[] Values, List<IndexedBox> Boxes);

/// <summary>One value index entry of a new entity: an <see cref="IndexedValue"/> with its value as the index orders it.</summary>
internal readonly record struct NewIndexValue(string Attribute, IndexedValueKind Kind, IndexValue Value);
