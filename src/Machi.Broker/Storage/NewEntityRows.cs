using System.Buffers;
using System.Text.Json;
using Machi.Broker.Access;
using Machi.Ngsi.Model;

namespace Machi.Broker.Storage;

/// <summary>
/// What storing a new entity writes that costs the single writer most and does not depend on the database: its stored
/// form, access marks and the encoded instances of its history rows, worked out on the request's thread when the write
/// is made, so the writer mostly binds and steps. Used only when the write does create the entity it was made for.
/// Kept to a few arrays: it lives until the writer reaches it, long enough for the garbage collector to promote it, and
/// every object promoted costs (measured: one object per history row doubled the collector's time in batch upserts).
/// </summary>
internal sealed class NewEntityRows
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_instances;

    private readonly byte[] _instances;
    private readonly Stamp[] _stamps;

    private NewEntityRows(Entity entity)
    {
        Doc = EntityCodec.Encode(entity);
        Access = EntityAccess.Of(entity);
        TypesJson = JsonSerializer.Serialize(entity.Types);
        var buffer = t_instances ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        var stamps = new List<Stamp>();
        foreach (var (_, instances) in entity.Attributes)
        {
            foreach (var instance in instances)
            {
                EntityCodec.EncodeInstance(instance, buffer);
                var observed = NgsiText.TryParseDateTime(instance.ObservedAt, out var o) ? o.UtcTicks : (long?)null;
                stamps.Add(new Stamp(buffer.WrittenCount, observed));
            }
        }

        _instances = buffer.WrittenSpan.ToArray();
        _stamps = [.. stamps];
    }

    /// <summary>Where an instance's encoding ends in <see cref="_instances"/>, and its observedAt in UTC ticks.</summary>
    private readonly record struct Stamp(int End, long? ObservedAt);

    /// <summary>The entity in <see cref="EntityCodec"/>'s form.</summary>
    public byte[] Doc { get; }

    public EntityAccess Access { get; }

    /// <summary>The types as a JSON array (the history's entity row).</summary>
    public string TypesJson { get; }

    /// <summary>The number of instances (history rows of the creation).</summary>
    public int InstanceCount => _stamps.Length;

    public static NewEntityRows Of(Entity entity) => new(entity);

    /// <summary>The <paramref name="ordinal"/>-th instance in the entity's order, encoded as the history stores it.</summary>
    public ReadOnlySpan<byte> Instance(int ordinal)
    {
        var start = ordinal == 0 ? 0 : _stamps[ordinal - 1].End;
        return _instances.AsSpan(start, _stamps[ordinal].End - start);
    }

    /// <summary>The observedAt of the <paramref name="ordinal"/>-th instance in UTC ticks, null when it has none.</summary>
    public long? ObservedAt(int ordinal) => _stamps[ordinal].ObservedAt;
}
