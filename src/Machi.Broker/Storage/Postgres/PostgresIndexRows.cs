using System.Collections.Concurrent;
using System.Text.Json;
using Machi.Ngsi.Geo;
using Machi.Ngsi.Model;
using NetTopologySuite.Geometries;
using NetTopologySuite.IO;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Storage.Postgres;

/// <summary>One row of entity_numbers (<see cref="Text"/> null) or entity_strings.</summary>
internal readonly record struct ValueRow(string Attribute, bool Instant, double Number, string? Text);

/// <summary>
/// <see cref="EntityIndexRows.Values"/> as PostgreSQL stores them. Values are coarsened where PostgreSQL cannot hold
/// them exactly, always by a function that keeps order (a ≤ b ⇒ f(a) ≤ f(b)) and equality, so candidates found with
/// the same function applied to the query's bounds (inclusive) never miss a match: numbers and ticks become doubles;
/// text is cut before its first NUL (text cannot hold one) and after 200 code points (a b-tree key holds ~2.7 kB).
/// </summary>
internal static class PostgresValueRows
{
    private const int MaxTextCodePoints = 200;

    // The values as EntityIndexRows reads them, before the rows dedupe them (a list reused by the thread: the rows of
    // each new entity are made on a request's thread, ~1,000 a batch).
    [ThreadStatic]
    private static List<IndexedValue>? t_values;

    public static HashSet<ValueRow> Rows(Entity? entity)
    {
        var values = t_values ??= [];
        values.Clear();
        if (entity is not null)
        {
            EntityIndexRows.AddValues(entity, values);
        }

        var rows = new HashSet<ValueRow>(values.Count);
        foreach (var value in values)
        {
            rows.Add(value.Value switch
            {
                string s => new ValueRow(value.Attribute, false, 0, Text(s)),
                long l => new ValueRow(value.Attribute, value.Kind == IndexedValueKind.Instant, l, null),
                double d => new ValueRow(value.Attribute, false, d, null),
                _ => throw new InvalidOperationException($"Unexpected index value {value.Value.GetType()}."),
            });
        }

        values.Clear();
        return rows;
    }

    /// <summary>Text as entity_strings holds it (see the class summary); also cut before an unpaired surrogate, which UTF-8 cannot encode.</summary>
    public static string Text(string value)
    {
        var end = value.Length;
        var codePoints = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\0' || codePoints == MaxTextCodePoints)
            {
                end = i;
                break;
            }

            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                end = i;
                break;
            }

            codePoints++;
        }

        return end == value.Length ? value : value[..end];
    }
}

/// <summary>One row of entity_geo: an entity's GeoProperty name and its geometries as WKB (null: not a geography).</summary>
internal sealed record GeoRow(string Attribute, byte[]? Wkb)
{
    /// <summary>Whether <see cref="Wkb"/> is the geography as it is, with no edge to split (<see cref="PostgresGeo.CopiesAsIs"/>).</summary>
    public bool AsIs { get; init; }

    public bool Equals(GeoRow? other) => other is not null && Attribute == other.Attribute
        && (Wkb is null ? other.Wkb is null : other.Wkb is not null && Wkb.AsSpan().SequenceEqual(other.Wkb));

    public override int GetHashCode() => HashCode.Combine(Attribute, Wkb?.Length);
}

/// <summary>How entity and query geometries become PostGIS geographies.</summary>
internal static class PostgresGeo
{
    /// <summary>
    /// Edges are split to at most this many degrees before the cast, so each geodesic edge of the geography stays
    /// within metres of the straight edge in longitude/latitude that the evaluator (NetTopologySuite) sees.
    /// </summary>
    public const double SegmentDegrees = 0.05;

    /// <summary>The SQL of the geography of a WKB parameter (EPSG:4326).</summary>
    public static string Geography(string wkbParameter) =>
        $"ST_Segmentize(ST_GeomFromWKB({wkbParameter}, 4326), {SegmentDegrees.ToString(System.Globalization.CultureInfo.InvariantCulture)})::geography";

    public static List<GeoRow> Rows(Entity? entity)
    {
        var rows = new List<GeoRow>();
        if (entity is null)
        {
            return rows;
        }

        foreach (var (name, instances) in entity.Attributes)
        {
            List<Geometry>? geometries = null;
            var valid = true;
            foreach (var instance in instances)
            {
                if (instance.Kind != AttributeKind.GeoProperty)
                {
                    continue;
                }

                geometries ??= [];
                try
                {
                    using var document = JsonDocument.Parse(instance.PayloadUtf8.ToArray());
                    geometries.Add(GeoJsonGeometry.Parse(document.RootElement));
                }
                catch (Exception ex) when (ex is JsonException or Machi.Ngsi.Errors.NgsiException or ArgumentException)
                {
                    valid = false;
                }
            }

            if (geometries is null)
            {
                continue;
            }

            var collected = geometries.Count == 1 ? geometries[0] : GeoJsonGeometry.Factory.CreateGeometryCollection([.. geometries]);
            rows.Add(valid && Wkb(collected) is { } wkb ? new GeoRow(name, wkb) { AsIs = CopiesAsIs(collected) } : new GeoRow(name, null));
        }

        return rows;
    }

    /// <summary>
    /// Whether <see cref="Geography"/> leaves the geometry as it is, so that its WKB can be copied into a geography
    /// column (PostGIS's receive function makes of it what the cast from geometry makes, byte for byte): points, and
    /// lines and rings whose every edge is longer than zero and no longer than <see cref="SegmentDegrees"/>, decided by
    /// ST_Segmentize's own arithmetic (ceil(length / max) pieces an edge; a repeated point is dropped).
    /// </summary>
    public static bool CopiesAsIs(Geometry geometry)
    {
        switch (geometry)
        {
            case Point:
            case MultiPoint:
                return true;
            case LineString line:
                return EdgesAsIs(line.CoordinateSequence);
            case Polygon polygon:
                if (!EdgesAsIs(polygon.Shell.CoordinateSequence))
                {
                    return false;
                }

                foreach (var hole in polygon.Holes)
                {
                    if (!EdgesAsIs(hole.CoordinateSequence))
                    {
                        return false;
                    }
                }

                return true;
            case GeometryCollection collection:
                for (var i = 0; i < collection.NumGeometries; i++)
                {
                    if (!CopiesAsIs(collection.GetGeometryN(i)))
                    {
                        return false;
                    }
                }

                return true;
            default:
                return false;
        }
    }

    private static bool EdgesAsIs(CoordinateSequence points)
    {
        for (var i = 1; i < points.Count; i++)
        {
            var dx = points.GetX(i) - points.GetX(i - 1);
            var dy = points.GetY(i) - points.GetY(i - 1);
            var length = Math.Sqrt((dx * dx) + (dy * dy));
            if (!(length > 0) || Math.Ceiling(length / SegmentDegrees) > 1)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The WKB of a geometry that PostGIS can take as a geography meaning what the evaluator means, else null: every
    /// coordinate in range, and spanning less than a hemisphere (beyond, a geography ring's inside is ambiguous, and a
    /// line across the antimeridian would take the short way round instead of the evaluator's long way).
    /// </summary>
    public static byte[]? Wkb(Geometry geometry)
    {
        if (geometry.IsEmpty)
        {
            return null;
        }

        var envelope = geometry.EnvelopeInternal;
        if (envelope.MinX < -180 || envelope.MaxX > 180 || envelope.MinY < -90 || envelope.MaxY > 90 || envelope.Width >= 180 || envelope.Height >= 90)
        {
            return null;
        }

        foreach (var coordinate in geometry.Coordinates)
        {
            if (!double.IsFinite(coordinate.X) || !double.IsFinite(coordinate.Y))
            {
                return null;
            }
        }

        return new WKBWriter(ByteOrder.LittleEndian, handleSRID: false, emitZ: false, emitM: false).Write(geometry);
    }
}

/// <summary>
/// The rows of one set-based statement, kept column by column and sent as one array parameter a column ($1 … $n in
/// column order), which the statement unnests: one statement a table for a whole group of writes or chunk of an
/// import, where a statement a row costs PostgreSQL more in protocol and planning than in the work itself.
/// </summary>
internal sealed class ArrayRows(string sql, params NpgsqlDbType[] columns)
{
    private readonly List<object?>[] _values = [.. columns.Select(_ => new List<object?>())];

    public int Count => _values[0].Count;

    /// <param name="row">One value a column, in the columns' order (null for SQL NULL).</param>
    public void Add(params object?[] row)
    {
        if (row.Length != columns.Length)
        {
            throw new ArgumentException($"A row of {columns.Length} columns was given {row.Length} values.", nameof(row));
        }

        for (var i = 0; i < row.Length; i++)
        {
            _values[i].Add(row[i]);
        }
    }

    /// <summary>Adds the statement to <paramref name="batch"/> unless it has no rows.</summary>
    public void AddTo(NpgsqlBatch batch)
    {
        if (Count == 0)
        {
            return;
        }

        var command = new NpgsqlBatchCommand(sql);
        for (var i = 0; i < columns.Length; i++)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = Column(_values[i], columns[i]), NpgsqlDbType = NpgsqlDbType.Array | columns[i] });
        }

        batch.BatchCommands.Add(command);
    }

    private static Array Column(List<object?> values, NpgsqlDbType type) => type switch
    {
        NpgsqlDbType.Text => Typed<string?>(values),
        NpgsqlDbType.Bytea => Typed<byte[]?>(values),
        NpgsqlDbType.Bigint => Typed<long?>(values),
        NpgsqlDbType.Smallint => Typed<short?>(values),
        NpgsqlDbType.Double => Typed<double?>(values),
        NpgsqlDbType.Boolean => Typed<bool?>(values),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "No array column of this type."),
    };

    private static T[] Typed<T>(List<object?> values)
    {
        var array = new T[values.Count];
        for (var i = 0; i < array.Length; i++)
        {
            array[i] = (T)values[i]!;
        }

        return array;
    }
}

/// <summary>
/// Rows appended to one table in the caller's transaction, for rows nothing stored can conflict with (a group's
/// change-log and history rows, the rows of entities it creates): many by binary COPY, a few as one unnested
/// <c>INSERT</c> in the group's batch. COPY skips what an INSERT of unnested arrays costs per row (the executor's
/// projection, a WAL record a row instead of a page) and, without ON CONFLICT, the speculative insertion an upsert makes
/// in every unique index (a probe, then a confirmation record a row); but each COPY is its own round trips and
/// importer, which cost a group of a few single writes more than they save.
/// </summary>
/// <remarks>
/// Each column is listed once (<see cref="Text"/>, <see cref="Bigint(string, Func{TRow, long})"/>, …), with its value
/// read from the row by its own type: the COPY and the <c>INSERT</c> write the same values, and a row's values are
/// never boxed (a 1,000-entity group copies ~27,000 rows). A group's rows of one table fill arrays of hundreds of
/// kilobytes, which the runtime allocates on its large object heap, where every allocation counts towards the next
/// full collection: the lists are kept for the next group.
/// </remarks>
/// <param name="table">The table's name.</param>
internal sealed class CopyRows<TRow>(string table)
{
    /// <summary>Fewer rows than this go as an <c>INSERT</c> in the batch.</summary>
    internal const int MinCopyRows = 256;

    private const int MaxKeptRows = 1 << 16;
    private static readonly ConcurrentBag<List<TRow>> Kept = [];
    private readonly List<Column> _columns = [];
    private List<TRow>? _rows;

    // Rows encoded ahead in COPY's binary form, whole tuples (AddEncoded): they are only ever copied.
    private List<ReadOnlyMemory<byte>>? _encoded;

    public int Count => _rows?.Count ?? 0;

    /// <summary>Adds tuples encoded ahead (<see cref="CopyEncoder"/>, this table's columns in order): the table's rows are then all copied, however few.</summary>
    public void AddEncoded(ReadOnlyMemory<byte> tuples) => (_encoded ??= []).Add(tuples);

    public CopyRows<TRow> Text(string name, Func<TRow, string?> value) => Add(new TextColumn(name, value));

    public CopyRows<TRow> Bytea(string name, Func<TRow, byte[]?> value) => Add(new BytesColumn(name, value));

    /// <summary>A geography column from WKB that PostGIS takes as it is (<see cref="PostgresGeo.CopiesAsIs"/>; null: NULL).</summary>
    public CopyRows<TRow> Geography(string name, Func<TRow, byte[]?> wkb) => Add(new BytesColumn(name, wkb, PostgresGeo.Geography));

    public CopyRows<TRow> Bigint(string name, Func<TRow, long> value) => Add(new ValueColumn<long>(name, NpgsqlDbType.Bigint, value));

    public CopyRows<TRow> Bigint(string name, Func<TRow, long?> value) => Add(new NullableColumn<long>(name, NpgsqlDbType.Bigint, value));

    public CopyRows<TRow> Smallint(string name, Func<TRow, short> value) => Add(new ValueColumn<short>(name, NpgsqlDbType.Smallint, value));

    public CopyRows<TRow> Double(string name, Func<TRow, double> value) => Add(new ValueColumn<double>(name, NpgsqlDbType.Double, value));

    public CopyRows<TRow> Boolean(string name, Func<TRow, bool> value) => Add(new ValueColumn<bool>(name, NpgsqlDbType.Boolean, value));

    /// <summary>A bigint[] column (<see cref="EntityAttrs"/>): copied as an array; in the <c>INSERT</c>, as its text form (an unnested parameter cannot hold arrays of arrays).</summary>
    public CopyRows<TRow> BigintArray(string name, Func<TRow, long[]> value) => Add(new BigintArrayColumn(name, value));

    public void Add(TRow row) => (_rows ??= Kept.TryTake(out var kept) ? kept : []).Add(row);

    /// <summary>Adds the rows to <paramref name="batch"/> as one <c>INSERT</c> when they are few (then <see cref="CopyAsync"/> has none left).</summary>
    public void AddTo(NpgsqlBatch batch)
    {
        if (_rows is not { Count: > 0 and < MinCopyRows } rows || _encoded is not null)
        {
            return;
        }

        var names = string.Join(", ", _columns.Select(c => c.Name));
        var arrays = string.Join(", ", _columns.Select((c, i) => $"${i + 1}::{c.ParameterType}[]"));
        var values = string.Join(", ", _columns.Select((c, i) => c.Value($"u.c{i}")));
        var aliases = string.Join(", ", _columns.Select((_, i) => $"c{i}"));
        var insert = new NpgsqlBatchCommand($"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays}) u({aliases})");
        foreach (var column in _columns)
        {
            insert.Parameters.Add(column.Array(rows));
        }

        batch.BatchCommands.Add(insert);
        Keep(rows);
    }

    /// <summary>Copies the rows left (none: nothing is sent).</summary>
    /// <remarks>
    /// The rows are encoded here in COPY's binary format (<see cref="CopyEncoder"/>) and streamed raw: Npgsql's
    /// importer took an awaited call, a converter lookup and a size pass a value (~150,000 values a 1,000-entity group),
    /// on the writer, which PostgreSQL's backend waits on while it copies.
    /// </remarks>
    public async Task CopyAsync(NpgsqlConnection connection)
    {
        var rows = _rows ?? [];
        if (rows.Count == 0 && _encoded is null)
        {
            return;
        }

        using var encoder = new CopyEncoder();
        var stream = await connection.BeginRawBinaryCopyAsync($"COPY {table} ({string.Join(", ", _columns.Select(c => c.Name))}) FROM STDIN (FORMAT BINARY)")
            .ConfigureAwait(false);
        try
        {
            encoder.Header();
            foreach (var row in rows)
            {
                var size = CopyEncoder.TupleHeader;
                foreach (var column in _columns)
                {
                    size += column.MaxSize(row);
                }

                if (!encoder.Fits(size))
                {
                    await encoder.FlushAsync(stream, size).ConfigureAwait(false);
                }

                EncodeRow(encoder, row);
            }

            foreach (var tuples in _encoded ?? [])
            {
                if (!encoder.Fits(tuples.Length))
                {
                    await encoder.FlushAsync(stream, tuples.Length).ConfigureAwait(false);
                }

                encoder.Raw(tuples.Span);
            }

            if (!encoder.Fits(CopyEncoder.TupleHeader))
            {
                await encoder.FlushAsync(stream, CopyEncoder.TupleHeader).ConfigureAwait(false);
            }

            encoder.Trailer();
            await encoder.FlushAsync(stream, 0).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not NpgsqlException)
        {
            // A value that cannot be encoded: the COPY ends with an error, so nothing half-sent is taken.
            await stream.CancelAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            // Ends the COPY (after a cancel: only releases the stream); PostgreSQL's verdict on the rows comes here.
            await stream.DisposeAsync().ConfigureAwait(false);
        }

        _encoded = null;
        if (_rows is not null)
        {
            Keep(rows);
        }
    }

    private void EncodeRow(CopyEncoder encoder, TRow row)
    {
        encoder.Int16((short)_columns.Count);
        foreach (var column in _columns)
        {
            column.Encode(encoder, row);
        }
    }

    internal static string SqlType(NpgsqlDbType type) => type switch
    {
        NpgsqlDbType.Text => "text",
        NpgsqlDbType.Bigint => "bigint",
        NpgsqlDbType.Smallint => "smallint",
        NpgsqlDbType.Bytea => "bytea",
        NpgsqlDbType.Double => "float8",
        NpgsqlDbType.Boolean => "boolean",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "No array column of this type."),
    };

    private CopyRows<TRow> Add(Column column)
    {
        _columns.Add(column);
        return this;
    }

    private void Keep(List<TRow> rows)
    {
        _rows = null;
        if (rows.Capacity <= MaxKeptRows)
        {
            rows.Clear();
            Kept.Add(rows);
        }
    }

    /// <summary>One column: its value in a row, encoded for a COPY or gathered into the <c>INSERT</c>'s array parameter.</summary>
    private abstract class Column(string name, NpgsqlDbType type)
    {
        public string Name => name;

        public NpgsqlDbType Type => type;

        /// <summary>The type of an element of the <c>INSERT</c>'s array parameter.</summary>
        public virtual string ParameterType => SqlType(type);

        /// <summary>The column's value in the <c>INSERT</c>, from the unnested <paramref name="element"/>.</summary>
        public virtual string Value(string element) => element;

        /// <summary>The most bytes <see cref="Encode"/> writes for the row's value (its length word included).</summary>
        public abstract int MaxSize(TRow row);

        public abstract void Encode(CopyEncoder encoder, TRow row);

        public abstract NpgsqlParameter Array(List<TRow> rows);
    }

    private sealed class ValueColumn<T>(string name, NpgsqlDbType type, Func<TRow, T> value) : Column(name, type)
        where T : struct
    {
        public override int MaxSize(TRow row) => CopyEncoder.LengthWord + CopyEncoder.SizeOf<T>();

        public override void Encode(CopyEncoder encoder, TRow row) => encoder.Value(value(row));

        public override NpgsqlParameter Array(List<TRow> rows) =>
            new NpgsqlParameter<T[]> { TypedValue = [.. rows.Select(value)], NpgsqlDbType = NpgsqlDbType.Array | Type };
    }

    private sealed class NullableColumn<T>(string name, NpgsqlDbType type, Func<TRow, T?> value) : Column(name, type)
        where T : struct
    {
        public override int MaxSize(TRow row) => CopyEncoder.LengthWord + CopyEncoder.SizeOf<T>();

        public override void Encode(CopyEncoder encoder, TRow row)
        {
            if (value(row) is { } v)
            {
                encoder.Value(v);
            }
            else
            {
                encoder.Null();
            }
        }

        public override NpgsqlParameter Array(List<TRow> rows) =>
            new NpgsqlParameter<T?[]> { TypedValue = [.. rows.Select(value)], NpgsqlDbType = NpgsqlDbType.Array | Type };
    }

    private sealed class TextColumn(string name, Func<TRow, string?> value) : Column(name, NpgsqlDbType.Text)
    {
        public override int MaxSize(TRow row) => CopyEncoder.LengthWord + CopyEncoder.MaxTextBytes(value(row));

        public override void Encode(CopyEncoder encoder, TRow row) => encoder.Text(value(row));

        public override NpgsqlParameter Array(List<TRow> rows) =>
            new NpgsqlParameter<string?[]> { TypedValue = [.. rows.Select(value)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text };
    }

    /// <summary>
    /// A bytea column, or any column whose binary form the row holds as bytes: a geography takes WKB, which PostGIS's
    /// receive function reads as the cast from geometry would (<see cref="PostgresGeo.CopiesAsIs"/>); its
    /// <c>INSERT</c> value is then <paramref name="insertValue"/>'s SQL.
    /// </summary>
    private sealed class BytesColumn(string name, Func<TRow, byte[]?> value, Func<string, string>? insertValue = null) : Column(name, NpgsqlDbType.Bytea)
    {
        public override string Value(string element) => insertValue?.Invoke(element) ?? element;

        public override int MaxSize(TRow row) => CopyEncoder.LengthWord + (value(row)?.Length ?? 0);

        public override void Encode(CopyEncoder encoder, TRow row) => encoder.Bytes(value(row));

        public override NpgsqlParameter Array(List<TRow> rows) =>
            new NpgsqlParameter<byte[]?[]> { TypedValue = [.. rows.Select(value)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea };
    }

    private sealed class BigintArrayColumn(string name, Func<TRow, long[]> value) : Column(name, NpgsqlDbType.Array | NpgsqlDbType.Bigint)
    {
        public override string ParameterType => "text";

        public override string Value(string element) => element + "::bigint[]";

        public override int MaxSize(TRow row) => CopyEncoder.LengthWord + CopyEncoder.BigintArraySize(value(row));

        public override void Encode(CopyEncoder encoder, TRow row) => encoder.BigintArray(value(row));

        public override NpgsqlParameter Array(List<TRow> rows) =>
            new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(row => EntityAttrs.Literal(value(row)))], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text };
    }
}

/// <summary>
/// Rows in PostgreSQL's binary COPY format (a signature and flags, then a field count and a length-prefixed value a
/// field for each row, all big-endian; -1 for NULL, -1 as a field count to end), encoded into a pooled buffer that
/// goes to a raw COPY stream when full.
/// </summary>
internal sealed class CopyEncoder : IDisposable
{
    public const int LengthWord = 4;

    public const int TupleHeader = 2;

    /// <summary>The buffer's size: a few socket writes' worth (the writer's connections buffer 64 kB).</summary>
    private const int ChunkSize = 64 * 1024;

    /// <summary>int8, which an array's header names as its element type.</summary>
    private const int Int8Oid = 20;

    /// <summary>As Npgsql encodes text: UTF-8 that throws on a lone surrogate instead of replacing it.</summary>
    private static readonly System.Text.UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly bool _pooled;
    private byte[] _buffer;
    private int _written;

    /// <param name="pooled">Whether the buffer comes from the shared pool (an encoder a COPY, disposed after it); else
    /// it is the encoder's own, kept by a thread that encodes rows ahead (<see cref="Grow"/>, <see cref="ToArray"/>).</param>
    public CopyEncoder(bool pooled = true)
    {
        _pooled = pooled;
        _buffer = pooled ? System.Buffers.ArrayPool<byte>.Shared.Rent(ChunkSize) : new byte[ChunkSize];
    }

    /// <summary>"PGCOPY\n\xff\r\n\0".</summary>
    private static ReadOnlySpan<byte> Signature => [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00];

    public static int SizeOf<T>()
        where T : struct => System.Runtime.CompilerServices.Unsafe.SizeOf<T>();

    /// <summary>The most UTF-8 bytes of a text value (none for NULL).</summary>
    public static int MaxTextBytes(string? value) => value is null ? 0 : Utf8.GetMaxByteCount(value.Length);

    /// <summary>The encoded size of a one-dimensional bigint[] without NULLs (its header, its dimension, its elements).</summary>
    public static int BigintArraySize(long[] values) => 12 + (values.Length == 0 ? 0 : 8 + (values.Length * 12));

    public bool Fits(int bytes) => _buffer.Length - _written >= bytes;

    /// <summary>Sends what is encoded, and makes room for <paramref name="next"/> bytes (a row larger than the buffer gets a larger one).</summary>
    public async ValueTask FlushAsync(System.IO.Stream stream, int next)
    {
        if (_written > 0)
        {
            await stream.WriteAsync(_buffer.AsMemory(0, _written)).ConfigureAwait(false);
            _written = 0;
        }

        if (next > _buffer.Length)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(next);
        }
    }

    /// <summary>Makes room for <paramref name="bytes"/> more bytes (an encoder that is not streamed: its rows stay in the buffer).</summary>
    public void Grow(int bytes)
    {
        if (!Fits(bytes))
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _written + bytes));
        }
    }

    public void Reset() => _written = 0;

    /// <summary>The bytes encoded so far.</summary>
    public int Written => _written;

    public byte[] ToArray() => _buffer.AsSpan(0, _written).ToArray();

    /// <summary>Rows encoded ahead (whole tuples), as they are.</summary>
    public void Raw(ReadOnlySpan<byte> tuples)
    {
        tuples.CopyTo(_buffer.AsSpan(_written));
        _written += tuples.Length;
    }

    public void Header()
    {
        Signature.CopyTo(_buffer);
        _written = Signature.Length;
        Int32(0); // flags
        Int32(0); // header extension length
    }

    public void Trailer() => Int16(-1);

    public void Int16(short value)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_written), value);
        _written += 2;
    }

    public void Null() => Int32(-1);

    public void Value<T>(T value)
        where T : struct
    {
        var span = _buffer.AsSpan(_written);
        if (typeof(T) == typeof(long))
        {
            Int32(8);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(span[4..], (long)(object)value);
            _written += 8;
        }
        else if (typeof(T) == typeof(short))
        {
            Int32(2);
            System.Buffers.Binary.BinaryPrimitives.WriteInt16BigEndian(span[4..], (short)(object)value);
            _written += 2;
        }
        else if (typeof(T) == typeof(double))
        {
            Int32(8);
            System.Buffers.Binary.BinaryPrimitives.WriteDoubleBigEndian(span[4..], (double)(object)value);
            _written += 8;
        }
        else if (typeof(T) == typeof(bool))
        {
            Int32(1);
            span[4] = (bool)(object)value ? (byte)1 : (byte)0;
            _written += 1;
        }
        else
        {
            throw new NotSupportedException($"No COPY encoding of {typeof(T)}.");
        }
    }

    public void Text(string? value)
    {
        if (value is null)
        {
            Null();
            return;
        }

        var length = Utf8.GetBytes(value, _buffer.AsSpan(_written + LengthWord));
        Int32(length);
        _written += length;
    }

    public void Bytes(byte[]? value)
    {
        if (value is null)
        {
            Null();
            return;
        }

        Int32(value.Length);
        value.CopyTo(_buffer.AsSpan(_written));
        _written += value.Length;
    }

    /// <summary>A value given as its bytes: a bytea, or text already in UTF-8.</summary>
    public void Bytes(ReadOnlySpan<byte> value)
    {
        Int32(value.Length);
        value.CopyTo(_buffer.AsSpan(_written));
        _written += value.Length;
    }

    public void BigintArray(long[] values)
    {
        Int32(BigintArraySize(values));
        Int32(values.Length == 0 ? 0 : 1); // dimensions (an empty array has none)
        Int32(0); // no NULLs
        Int32(Int8Oid);
        if (values.Length == 0)
        {
            return;
        }

        Int32(values.Length);
        Int32(1); // lower bound
        foreach (var value in values)
        {
            Value(value);
        }
    }

    public void Dispose()
    {
        if (_pooled)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = [];
    }

    private void Int32(int value)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_written), value);
        _written += 4;
    }
}

/// <summary>
/// entities.attrs: an entity's attribute names as term ids, ascending (one array in its row, found through a GIN index,
/// where a row a name in entity_attrs cost a batch upsert ~8 index rows an entity).
/// </summary>
internal static class EntityAttrs
{
    public static long[] Ids(IndexedRows rows, IReadOnlyDictionary<string, long> terms)
    {
        var ids = new long[rows.Attributes.Length];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = terms[rows.Attributes[i]];
        }

        Array.Sort(ids);
        return ids;
    }

    /// <summary>The array's text form, for a statement's text parameter (cast to bigint[] in the statement).</summary>
    public static string Literal(long[] ids) => "{" + string.Join(',', ids.Select(id => id.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "}";

    /// <summary>Whether two entities' rows name the same attributes.</summary>
    public static bool Same(IndexedRows before, IndexedRows after) =>
        before.Attributes.Length == after.Attributes.Length && before.Attributes.ToHashSet(StringComparer.Ordinal).SetEquals(after.Attributes);
}

/// <summary>The index rows of one entity (none for no entity): its types, attribute names, values and geometries.</summary>
internal sealed class IndexedRows
{
    public static readonly IndexedRows None = new(null);

    private IndexedRows(Entity? entity)
    {
        Types = entity is null ? [] : [.. entity.Types.Distinct(StringComparer.Ordinal)];
        Attributes = entity is null ? [] : [.. entity.Attributes.Keys];
        Values = PostgresValueRows.Rows(entity);
        Geo = PostgresGeo.Rows(entity);
    }

    public string[] Types { get; }

    public string[] Attributes { get; }

    public HashSet<ValueRow> Values { get; }

    public List<GeoRow> Geo { get; }

    /// <summary>Every term the rows name.</summary>
    public IEnumerable<string> Names => Types.Concat(Attributes).Concat(Values.Select(v => v.Attribute)).Concat(Geo.Select(g => g.Attribute));

    /// <summary>Whether <paramref name="terms"/> has an id for every term the rows name; else adds the missing ones to <paramref name="missing"/> (when given).</summary>
    public bool AllKnown(IReadOnlyDictionary<string, long> terms, List<string>? missing = null)
    {
        var known = true;
        foreach (var type in Types)
        {
            known &= Known(type, terms, missing);
        }

        foreach (var attribute in Attributes)
        {
            known &= Known(attribute, terms, missing);
        }

        foreach (var value in Values)
        {
            known &= Known(value.Attribute, terms, missing);
        }

        foreach (var geo in Geo)
        {
            known &= Known(geo.Attribute, terms, missing);
        }

        return known;
    }

    private static bool Known(string term, IReadOnlyDictionary<string, long> terms, List<string>? missing)
    {
        if (terms.ContainsKey(term))
        {
            return true;
        }

        missing?.Add(term);
        return false;
    }

    public static IndexedRows Of(Entity? entity) => entity is null ? None : new IndexedRows(entity);
}

/// <summary>
/// The index rows to remove and to add, table by table, as one statement a table and direction: the writer's group
/// (from each entity's rows before the group to its rows after) and the import's chunk (from none) alike.
/// </summary>
internal sealed class IndexChanges
{
    private readonly ArrayRows _typesGone = Gone("entity_types", "type", null);
    private readonly ArrayRows _typesNew = Added("entity_types", "type", null);
    private readonly ArrayRows _numbersGone = Gone("entity_numbers", "attr", NpgsqlDbType.Double);
    private readonly ArrayRows _numbersNew = Added("entity_numbers", "attr", NpgsqlDbType.Double);
    private readonly ArrayRows _stringsGone = Gone("entity_strings", "attr", NpgsqlDbType.Text);
    private readonly ArrayRows _stringsNew = Added("entity_strings", "attr", NpgsqlDbType.Text);

    private readonly ArrayRows _geoGone = Gone("entity_geo", "attr", null);

    private readonly ArrayRows _geoNew = new($"""
        INSERT INTO entity_geo (tenant, rid, attr, geog)
        SELECT t, r, a, CASE WHEN v IS NULL THEN NULL ELSE {PostgresGeo.Geography("v")} END
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) u(t, a, r, v)
        ON CONFLICT (tenant, rid, attr) DO UPDATE SET geog = excluded.geog
        """, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bytea);

    // Rows of entities whose rid is new (no index rows can exist): copied, with no conflict to look for.
    private readonly CopyRows<TermRow> _typesFresh = new CopyRows<TermRow>("entity_types").Text("tenant", r => r.Tenant).Bigint("type", r => r.Term).Bigint("rid", r => r.Rid);
    private readonly CopyRows<NumberRow> _numbersFresh = new CopyRows<NumberRow>("entity_numbers")
        .Text("tenant", r => r.Tenant).Bigint("attr", r => r.Term).Bigint("rid", r => r.Rid).Double("value", r => r.Value);

    private readonly CopyRows<StringRow> _stringsFresh = new CopyRows<StringRow>("entity_strings")
        .Text("tenant", r => r.Tenant).Bigint("attr", r => r.Term).Bigint("rid", r => r.Rid).Text("value", r => r.Value);

    // Geographies that need no edge split go as their WKB (PostgresGeo.CopiesAsIs): no SQL a row to build them.
    private readonly CopyRows<GeoFreshRow> _geoCopied = new CopyRows<GeoFreshRow>("entity_geo")
        .Text("tenant", r => r.Tenant).Bigint("rid", r => r.Rid).Bigint("attr", r => r.Term).Geography("geog", r => r.Wkb);

    private readonly ArrayRows _geoFresh = new($"""
        INSERT INTO entity_geo (tenant, rid, attr, geog)
        SELECT t, r, a, CASE WHEN v IS NULL THEN NULL ELSE {PostgresGeo.Geography("v")} END
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) u(t, a, r, v)
        """, NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bytea);

    /// <summary>The rows of an entity whose <paramref name="rid"/> was just taken, so that none of its index rows exist.</summary>
    /// <param name="terms">The id of every term <paramref name="rows"/> names.</param>
    public void Fresh(string tenant, long rid, IndexedRows rows, IReadOnlyDictionary<string, long> terms)
    {
        foreach (var type in rows.Types)
        {
            _typesFresh.Add(new TermRow(tenant, terms[type], rid));
        }

        foreach (var row in rows.Values)
        {
            var term = terms[row.Attribute];
            if (row.Text is null)
            {
                _numbersFresh.Add(new NumberRow(tenant, row.Instant ? -term : term, rid, row.Number));
            }
            else
            {
                _stringsFresh.Add(new StringRow(tenant, term, rid, row.Text));
            }
        }

        foreach (var row in rows.Geo)
        {
            if (row.Wkb is null || row.AsIs)
            {
                _geoCopied.Add(new GeoFreshRow(tenant, terms[row.Attribute], rid, row.Wkb));
            }
            else
            {
                _geoFresh.Add(tenant, terms[row.Attribute], rid, row.Wkb);
            }
        }
    }

    /// <summary>The rows of a new entity encoded ahead (<see cref="CreationIndex"/>), its <paramref name="rid"/> written in.</summary>
    public void FreshEncoded(CreationIndex rows, long rid)
    {
        rows.Number(rid);
        var tuples = rows.Tuples.AsMemory();
        ReadOnlySpan<int> ends = [rows.TypesEnd, rows.NumbersEnd, rows.StringsEnd, tuples.Length];
        var start = 0;
        for (var table = 0; table < ends.Length; table++)
        {
            if (ends[table] > start)
            {
                var segment = tuples[start..ends[table]];
                switch (table)
                {
                    case 0: _typesFresh.AddEncoded(segment); break;
                    case 1: _numbersFresh.AddEncoded(segment); break;
                    case 2: _stringsFresh.AddEncoded(segment); break;
                    default: _geoCopied.AddEncoded(segment); break;
                }
            }

            start = ends[table];
        }
    }

    /// <summary>Copies the rows of <see cref="Fresh"/> that <see cref="AddTo"/> left (after its statements, in the same transaction).</summary>
    public async Task CopyFreshAsync(NpgsqlConnection connection)
    {
        await _typesFresh.CopyAsync(connection).ConfigureAwait(false);
        await _numbersFresh.CopyAsync(connection).ConfigureAwait(false);
        await _stringsFresh.CopyAsync(connection).ConfigureAwait(false);
        await _geoCopied.CopyAsync(connection).ConfigureAwait(false);
    }

    /// <summary>The rows that take entity <paramref name="rid"/>'s index from <paramref name="before"/> to <paramref name="after"/>.</summary>
    /// <param name="terms">The id of every term either side names.</param>
    public void Change(string tenant, long rid, IndexedRows before, IndexedRows after, IReadOnlyDictionary<string, long> terms)
    {
        foreach (var type in before.Types.Except(after.Types, StringComparer.Ordinal))
        {
            _typesGone.Add(tenant, terms[type], rid);
        }

        foreach (var type in after.Types.Except(before.Types, StringComparer.Ordinal))
        {
            _typesNew.Add(tenant, terms[type], rid);
        }

        foreach (var row in before.Values)
        {
            if (!after.Values.Contains(row))
            {
                AddValue(row.Text is null ? _numbersGone : _stringsGone, tenant, rid, row, terms);
            }
        }

        foreach (var row in after.Values)
        {
            if (!before.Values.Contains(row))
            {
                AddValue(row.Text is null ? _numbersNew : _stringsNew, tenant, rid, row, terms);
            }
        }

        foreach (var row in before.Geo)
        {
            if (!after.Geo.Exists(a => a.Attribute == row.Attribute))
            {
                _geoGone.Add(tenant, terms[row.Attribute], rid);
            }
        }

        foreach (var row in after.Geo)
        {
            if (!before.Geo.Contains(row))
            {
                _geoNew.Add(tenant, terms[row.Attribute], rid, row.Wkb);
            }
        }
    }

    /// <summary>Adds the statements (removals first, then the new entities' rows when they are few) to <paramref name="batch"/>.</summary>
    public void AddTo(NpgsqlBatch batch)
    {
        foreach (var rows in (ArrayRows[])[_typesGone, _numbersGone, _stringsGone, _geoGone, _typesNew, _numbersNew, _stringsNew, _geoNew, _geoFresh])
        {
            rows.AddTo(batch);
        }

        _typesFresh.AddTo(batch);
        _numbersFresh.AddTo(batch);
        _stringsFresh.AddTo(batch);
        _geoCopied.AddTo(batch);
    }

    /// <summary>Removes rows (tenant, term, rid[, value]) of a table keyed (tenant, term[, value], rid), each by its whole key.</summary>
    private static ArrayRows Gone(string table, string term, NpgsqlDbType? value) => new(
        $"DELETE FROM {table} e USING {Unnest(value)} WHERE e.tenant = u.t AND e.{term} = u.a AND e.rid = u.r{(value is null ? "" : " AND e.value = u.v")}",
        Columns(value));

    private static ArrayRows Added(string table, string term, NpgsqlDbType? value) => new(
        $"INSERT INTO {table} (tenant, {term}, rid{(value is null ? "" : ", value")}) SELECT * FROM {Unnest(value)} ON CONFLICT DO NOTHING",
        Columns(value));

    private static string Unnest(NpgsqlDbType? value) => value switch
    {
        null => "unnest($1::text[], $2::bigint[], $3::bigint[]) u(t, a, r)",
        NpgsqlDbType.Double => "unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[]) u(t, a, r, v)",
        _ => "unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) u(t, a, r, v)",
    };

    private static NpgsqlDbType[] Columns(NpgsqlDbType? value) =>
        value is { } type ? [NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, type] : [NpgsqlDbType.Text, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint];

    private static void AddValue(ArrayRows rows, string tenant, long rid, ValueRow row, IReadOnlyDictionary<string, long> terms)
    {
        var term = terms[row.Attribute];
        if (row.Text is null)
        {
            // Instants share the attribute's term, negated, so a date never compares with a number.
            rows.Add(tenant, row.Instant ? -term : term, rid, row.Number);
        }
        else
        {
            rows.Add(tenant, term, rid, row.Text);
        }
    }

    private readonly record struct TermRow(string Tenant, long Term, long Rid);

    private readonly record struct NumberRow(string Tenant, long Term, long Rid, double Value);

    private readonly record struct StringRow(string Tenant, long Term, long Rid, string Value);

    private readonly record struct GeoFreshRow(string Tenant, long Term, long Rid, byte[]? Wkb);
}

/// <summary>
/// A new entity's index rows encoded ahead as binary COPY tuples, as <see cref="IndexChanges.Fresh"/> would give
/// them (entity_types, entity_numbers, entity_strings, then entity_geo, one after another in <see cref="Tuples"/>), and
/// its attrs: worked out on the request's thread, where its <see cref="IndexedRows"/> then die young instead of
/// living until the writer reaches them. The rid is known only in the writer's group: <see cref="Number"/> writes it in.
/// </summary>
internal sealed class CreationIndex
{
    /// <summary>Fewer writes than this in a request keep their rows (a group of a few single writes inserts them, see <see cref="CopyRows{TRow}.MinCopyRows"/>).</summary>
    public const int MinWrites = 32;

    [ThreadStatic]
    private static CopyEncoder? t_encoder;

    private CreationIndex(byte[] tuples, int typesEnd, int numbersEnd, int stringsEnd, long[] attrs) =>
        (Tuples, TypesEnd, NumbersEnd, StringsEnd, Attrs) = (tuples, typesEnd, numbersEnd, stringsEnd, attrs);

    public byte[] Tuples { get; }

    public int TypesEnd { get; }

    public int NumbersEnd { get; }

    public int StringsEnd { get; }

    /// <summary>entities.attrs (<see cref="EntityAttrs.Ids"/>).</summary>
    public long[] Attrs { get; }

    /// <returns>The rows, or null when a term has no id yet or a geography needs its edges split in SQL (the writer then makes the rows).</returns>
    public static CreationIndex? Encode(string tenant, IndexedRows rows, IReadOnlyDictionary<string, long> terms)
    {
        foreach (var geo in rows.Geo)
        {
            if (geo.Wkb is not null && !geo.AsIs)
            {
                return null;
            }
        }

        if (!rows.AllKnown(terms))
        {
            return null;
        }

        var encoder = t_encoder ??= new CopyEncoder(pooled: false);
        encoder.Reset();
        var tenantBytes = CopyEncoder.MaxTextBytes(tenant);
        foreach (var type in rows.Types)
        {
            encoder.Grow(CopyEncoder.TupleHeader + (3 * CopyEncoder.LengthWord) + tenantBytes + (2 * sizeof(long)));
            encoder.Int16(3);
            encoder.Text(tenant);
            encoder.Value(terms[type]);
            encoder.Value(0L);
        }

        var typesEnd = encoder.Written;
        foreach (var row in rows.Values)
        {
            if (row.Text is null)
            {
                // Instants share the attribute's term, negated (as IndexChanges.Fresh writes them).
                var term = terms[row.Attribute];
                encoder.Grow(CopyEncoder.TupleHeader + (4 * CopyEncoder.LengthWord) + tenantBytes + (3 * sizeof(long)));
                encoder.Int16(4);
                encoder.Text(tenant);
                encoder.Value(row.Instant ? -term : term);
                encoder.Value(0L);
                encoder.Value(row.Number);
            }
        }

        var numbersEnd = encoder.Written;
        foreach (var row in rows.Values)
        {
            if (row.Text is { } text)
            {
                encoder.Grow(CopyEncoder.TupleHeader + (4 * CopyEncoder.LengthWord) + tenantBytes + (2 * sizeof(long)) + CopyEncoder.MaxTextBytes(text));
                encoder.Int16(4);
                encoder.Text(tenant);
                encoder.Value(terms[row.Attribute]);
                encoder.Value(0L);
                encoder.Text(text);
            }
        }

        var stringsEnd = encoder.Written;
        foreach (var geo in rows.Geo)
        {
            encoder.Grow(CopyEncoder.TupleHeader + (4 * CopyEncoder.LengthWord) + tenantBytes + (2 * sizeof(long)) + (geo.Wkb?.Length ?? 0));
            encoder.Int16(4);
            encoder.Text(tenant);
            encoder.Value(0L);
            encoder.Value(terms[geo.Attribute]);
            encoder.Bytes(geo.Wkb);
        }

        return new CreationIndex(encoder.ToArray(), typesEnd, numbersEnd, stringsEnd, EntityAttrs.Ids(rows, terms));
    }

    /// <summary>Writes the entity's rid into every row (the third column of the value tables, the second of entity_geo).</summary>
    public void Number(long rid)
    {
        var span = Tuples.AsSpan();
        var at = 0;
        while (at < span.Length)
        {
            var ridColumn = at >= StringsEnd ? 1 : 2;
            var columns = System.Buffers.Binary.BinaryPrimitives.ReadInt16BigEndian(span[at..]);
            at += CopyEncoder.TupleHeader;
            for (var column = 0; column < columns; column++)
            {
                if (column == ridColumn)
                {
                    System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(span[(at + CopyEncoder.LengthWord)..], rid);
                }

                at += CopyEncoder.LengthWord + Math.Max(0, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(span[at..]));
            }
        }
    }
}
