using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace Machi.Broker.Moving;

/// <summary>How a target column takes a value from the archive (decided by the target's own catalog).</summary>
internal enum ColumnKind
{
    /// <summary>SQLite's untyped column: the JSON value as it is.</summary>
    Any,
    BigInt,
    Int,
    SmallInt,
    Real,
    Text,
    Bytes,
    Boolean,

    /// <summary>PostgreSQL's timestamp with time zone (Trust's dates).</summary>
    Timestamp,

    /// <summary>A SQLite text column EF Core reads as a DateTime (Trust's dates), written in its format.</summary>
    DateTimeText,

    /// <summary>A SQLite text column EF Core reads as a DateTimeOffset.</summary>
    DateTimeOffsetText,
}

/// <summary>
/// Moves the rows of one table between the archive and a database, with no column list of its own: an export writes
/// what the source's <c>SELECT</c> returns under the source's column names, an import reads the target table's
/// columns from its catalog (<c>PRAGMA table_info</c>, <c>information_schema.columns</c>) and converts each value to
/// the column's type. The schema is the stores' own, created by their migrations before the rows come in. Array
/// columns (PostgreSQL's entities.attrs) are index data a store derives from the documents, as the index tables are:
/// neither exported nor filled by an import.
/// </summary>
internal static class TableCopy
{
    /// <summary>Writes every row <paramref name="select"/> returns into a part.</summary>
    public static async Task ExportAsync(DbConnection connection, DbTransaction? tx, string select, PartWriter part, CancellationToken cancellationToken)
    {
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = select;
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var fields = Enumerable.Range(0, r.FieldCount).Where(i => !r.GetDataTypeName(i).EndsWith("[]", StringComparison.Ordinal)).ToArray();
        var names = fields.Select(r.GetName).ToArray();
        var values = new object?[names.Length];
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = r.IsDBNull(fields[i]) ? null : r.GetValue(fields[i]);
            }

            await part.RowAsync(json =>
            {
                for (var i = 0; i < names.Length; i++)
                {
                    Write(json, names[i], values[i]);
                }
            }).ConfigureAwait(false);
        }
    }

    public static void Write(Utf8JsonWriter json, string name, object? value)
    {
        switch (value)
        {
            case null:
                json.WriteNull(name);
                break;
            case string s:
                json.WriteString(name, s);
                break;
            case long l:
                json.WriteNumber(name, l);
                break;
            case int i:
                json.WriteNumber(name, i);
                break;
            case short h:
                json.WriteNumber(name, h);
                break;
            case double d:
                json.WriteNumber(name, d);
                break;
            case bool b:
                json.WriteBoolean(name, b);
                break;
            case byte[] bytes:
                json.WriteBase64String(name, bytes);
                break;
            case DateTime t:
                json.WriteString(name, DateTime.SpecifyKind(t, DateTimeKind.Utc).ToString("O", CultureInfo.InvariantCulture));
                break;
            case DateTimeOffset t:
                json.WriteString(name, t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
                break;
            default:
                throw new MoveException($"column {name} holds a {value.GetType().Name}, which the archive cannot carry");
        }
    }

    /// <summary>The columns of a table in a SQLite database, with <paramref name="dates"/> naming the text columns EF Core reads as dates.</summary>
    public static Dictionary<string, ColumnKind> Columns(SqliteConnection connection, SqliteTransaction? tx, string table, IReadOnlyDictionary<string, Type>? dates = null)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"SELECT name, type FROM pragma_table_info('{table}')";
        using var r = cmd.ExecuteReader();
        var columns = new Dictionary<string, ColumnKind>(StringComparer.Ordinal);
        while (r.Read())
        {
            var (name, type) = (r.GetString(0), r.GetString(1).ToUpperInvariant());
            columns[name] = dates?.GetValueOrDefault(name) is { } clr ? (clr == typeof(DateTime) ? ColumnKind.DateTimeText : ColumnKind.DateTimeOffsetText)
                : type.Contains("INT", StringComparison.Ordinal) ? ColumnKind.BigInt
                : type.Contains("CHAR", StringComparison.Ordinal) || type.Contains("TEXT", StringComparison.Ordinal) ? ColumnKind.Text
                : type.Contains("BLOB", StringComparison.Ordinal) ? ColumnKind.Bytes
                : type.Contains("REAL", StringComparison.Ordinal) || type.Contains("DOUB", StringComparison.Ordinal) ? ColumnKind.Real
                : ColumnKind.Any;
        }

        return columns.Count > 0 ? columns : throw new MoveException($"the target has no table {table}");
    }

    /// <summary>The columns of a table in PostgreSQL.</summary>
    public static async Task<Dictionary<string, ColumnKind>> ColumnsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string table, CancellationToken cancellationToken)
    {
        await using var cmd = new NpgsqlCommand("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1", connection, tx);
        cmd.Parameters.Add(new NpgsqlParameter { Value = table });
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var columns = new Dictionary<string, ColumnKind>(StringComparer.Ordinal);
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (r.GetString(1) == "ARRAY")
            {
                // Derived from the documents after the rows are in (see the class summary).
                continue;
            }

            columns[r.GetString(0)] = r.GetString(1) switch
            {
                "bigint" => ColumnKind.BigInt,
                "integer" => ColumnKind.Int,
                "smallint" => ColumnKind.SmallInt,
                "double precision" => ColumnKind.Real,
                "text" or "character varying" => ColumnKind.Text,
                "bytea" => ColumnKind.Bytes,
                "boolean" => ColumnKind.Boolean,
                "timestamp with time zone" => ColumnKind.Timestamp,
                var other => throw new MoveException($"column {table}.{r.GetString(0)} has type {other}, which the archive does not carry"),
            };
        }

        return columns.Count > 0 ? columns : throw new MoveException($"the target has no table {table}");
    }

    /// <summary>The columns a part's rows fill: all of the first row's, less <paramref name="ignored"/>; each must be in the target.</summary>
    private static string[] Fill(string table, JsonObject first, IReadOnlyDictionary<string, ColumnKind> columns, IReadOnlySet<string>? ignored)
    {
        var names = first.Select(m => m.Key).Where(n => ignored?.Contains(n) != true).ToArray();
        foreach (var name in names)
        {
            if (!columns.ContainsKey(name))
            {
                throw new MoveException($"the archive has a column {table}.{name} the target does not have (an archive of a newer Machi?)");
            }
        }

        return names;
    }

    /// <summary>Inserts the rows into a SQLite table in the caller's transaction; the count.</summary>
    public static long Import(SqliteConnection connection, SqliteTransaction tx, string table, IEnumerable<JsonObject> rows,
        IReadOnlyDictionary<string, ColumnKind> columns, IReadOnlySet<string>? ignored = null)
    {
        SqliteCommand? insert = null;
        string[] names = [];
        long count = 0;
        try
        {
            foreach (var row in rows)
            {
                if (insert is null)
                {
                    names = Fill(table, row, columns, ignored);
                    insert = connection.CreateCommand();
                    insert.Transaction = tx;
                    insert.CommandText = $"INSERT INTO \"{table}\" ({string.Join(", ", names.Select(n => $"\"{n}\""))}) VALUES ({string.Join(", ", names.Select((_, i) => $"$p{i}"))})";
                    for (var i = 0; i < names.Length; i++)
                    {
                        insert.Parameters.Add(new SqliteParameter($"$p{i}", DBNull.Value));
                    }

                    insert.Prepare();
                }

                for (var i = 0; i < names.Length; i++)
                {
                    insert.Parameters[i].Value = Value(table, names[i], row[names[i]], columns[names[i]]) ?? DBNull.Value;
                }

                insert.ExecuteNonQuery();
                count++;
            }
        }
        finally
        {
            insert?.Dispose();
        }

        return count;
    }

    /// <summary>Copies the rows into a PostgreSQL table (binary COPY) in the caller's transaction; the count.</summary>
    public static async Task<long> ImportAsync(NpgsqlConnection connection, string table, IEnumerable<JsonObject> rows,
        IReadOnlyDictionary<string, ColumnKind> columns, CancellationToken cancellationToken, IReadOnlySet<string>? ignored = null)
    {
        NpgsqlBinaryImporter? copy = null;
        string[] names = [];
        long count = 0;
        try
        {
            foreach (var row in rows)
            {
                if (copy is null)
                {
                    names = Fill(table, row, columns, ignored);
                    copy = await connection.BeginBinaryImportAsync(
                        $"COPY \"{table}\" ({string.Join(", ", names.Select(n => $"\"{n}\""))}) FROM STDIN (FORMAT BINARY)", cancellationToken).ConfigureAwait(false);
                }

                await copy.StartRowAsync(cancellationToken).ConfigureAwait(false);
                foreach (var name in names)
                {
                    var kind = columns[name];
                    if (Value(table, name, row[name], kind) is { } value)
                    {
                        await copy.WriteAsync(value, PostgresType(kind), cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await copy.WriteNullAsync(cancellationToken).ConfigureAwait(false);
                    }
                }

                count++;
            }

            if (copy is not null)
            {
                await copy.CompleteAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            if (copy is not null)
            {
                await copy.DisposeAsync().ConfigureAwait(false);
            }
        }

        return count;
    }

    private static NpgsqlDbType PostgresType(ColumnKind kind) => kind switch
    {
        ColumnKind.BigInt => NpgsqlDbType.Bigint,
        ColumnKind.Int => NpgsqlDbType.Integer,
        ColumnKind.SmallInt => NpgsqlDbType.Smallint,
        ColumnKind.Real => NpgsqlDbType.Double,
        ColumnKind.Bytes => NpgsqlDbType.Bytea,
        ColumnKind.Boolean => NpgsqlDbType.Boolean,
        ColumnKind.Timestamp => NpgsqlDbType.TimestampTz,
        _ => NpgsqlDbType.Text,
    };

    /// <summary>The archive's value as the target column takes it (null for SQL NULL).</summary>
    private static object? Value(string table, string column, JsonNode? node, ColumnKind kind)
    {
        if (node is null)
        {
            return null;
        }

        try
        {
            var json = node.AsValue();
            return (kind, json.GetValueKind()) switch
            {
                (ColumnKind.BigInt or ColumnKind.Int or ColumnKind.SmallInt or ColumnKind.Boolean or ColumnKind.Any, JsonValueKind.True) => kind == ColumnKind.Boolean ? true : 1L,
                (ColumnKind.BigInt or ColumnKind.Int or ColumnKind.SmallInt or ColumnKind.Boolean or ColumnKind.Any, JsonValueKind.False) => kind == ColumnKind.Boolean ? false : 0L,
                (ColumnKind.Boolean, JsonValueKind.Number) => json.GetValue<long>() != 0,
                (ColumnKind.BigInt, JsonValueKind.Number) => json.GetValue<long>(),
                (ColumnKind.Int, JsonValueKind.Number) => json.GetValue<int>(),
                (ColumnKind.SmallInt, JsonValueKind.Number) => json.GetValue<short>(),
                (ColumnKind.Real or ColumnKind.Any, JsonValueKind.Number) => json.TryGetValue<long>(out var whole) && kind == ColumnKind.Any ? whole : json.GetValue<double>(),
                (ColumnKind.Text or ColumnKind.Any, JsonValueKind.String) => json.GetValue<string>(),
                (ColumnKind.Bytes, JsonValueKind.String) => Convert.FromBase64String(json.GetValue<string>()),
                (ColumnKind.Timestamp, JsonValueKind.String) => Instant(json.GetValue<string>()).UtcDateTime,
                (ColumnKind.DateTimeText, JsonValueKind.String) => Instant(json.GetValue<string>()).UtcDateTime,
                (ColumnKind.DateTimeOffsetText, JsonValueKind.String) => Instant(json.GetValue<string>()),
                _ => throw new MoveException($"{table}.{column}: the archive's value {node.ToJsonString()} does not fit the target column"),
            };
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or OverflowException)
        {
            throw new MoveException($"{table}.{column}: the archive's value {node.ToJsonString()} does not fit the target column ({e.Message})");
        }
    }

    /// <summary>A time as the archive or EF Core's SQLite text holds it (no offset: UTC).</summary>
    private static DateTimeOffset Instant(string text) =>
        DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
}
