using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Machi.Broker.Storage;

/// <summary>
/// A prepared statement driven through SQLite's C API on a Microsoft.Data.Sqlite connection, for the few
/// statements every write and read runs: parameters bound by position, blobs read as spans, nothing allocated per
/// execution (Microsoft.Data.Sqlite resolves parameter names and builds a reader on every call). It joins the
/// connection's current transaction like any other statement; failures surface as <see cref="SqliteException"/>.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public RawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
    }

    public RawStatement Bind(int index, string value)
    {
        Check(raw.sqlite3_bind_text(_statement, index, value));
        return this;
    }

    /// <summary>Binds UTF-8 bytes as TEXT.</summary>
    public RawStatement BindText(int index, ReadOnlySpan<byte> utf8)
    {
        Check(raw.sqlite3_bind_text(_statement, index, utf8));
        return this;
    }

    /// <summary>Binds text, or leaves the parameter NULL when <paramref name="value"/> is null.</summary>
    public RawStatement BindOrNull(int index, string? value) => value is null ? this : Bind(index, value);

    public RawStatement Bind(int index, long value)
    {
        Check(raw.sqlite3_bind_int64(_statement, index, value));
        return this;
    }

    public RawStatement Bind(int index, double value)
    {
        Check(raw.sqlite3_bind_double(_statement, index, value));
        return this;
    }

    /// <summary>Binds a long, double or string with its own storage class.</summary>
    public RawStatement BindValue(int index, object value) => value switch
    {
        long n => Bind(index, n),
        double d => Bind(index, d),
        string text => Bind(index, text),
        _ => throw new ArgumentException($"Cannot bind a {value.GetType().Name}.", nameof(value)),
    };

    /// <summary>Binds a named parameter ("$name"); a name the statement does not use is ignored.</summary>
    public RawStatement BindNamed(string name, object value)
    {
        var index = raw.sqlite3_bind_parameter_index(_statement, name);
        return index == 0 ? this : BindValue(index, value switch
        {
            int i => (long)i,
            bool b => b ? 1L : 0L,
            _ => value,
        });
    }

    public RawStatement Bind(int index, ReadOnlySpan<byte> blob)
    {
        Check(raw.sqlite3_bind_blob(_statement, index, blob));
        return this;
    }

    /// <summary>Advances to the next row; false when the statement is done.</summary>
    public bool Step()
    {
        var rc = raw.sqlite3_step(_statement);
        if (rc == raw.SQLITE_ROW)
        {
            return true;
        }

        if (rc != raw.SQLITE_DONE)
        {
            Reset();
            SqliteException.ThrowExceptionForRC(rc, _db);
        }

        return false;
    }

    public long Int64(int column) => raw.sqlite3_column_int64(_statement, column);

    public bool IsNull(int column) => raw.sqlite3_column_type(_statement, column) == raw.SQLITE_NULL;

    public string Text(int column) => raw.sqlite3_column_text(_statement, column).utf8_to_string();

    /// <summary>A blob column (or a text column's UTF-8 bytes), valid until the next Step or Reset.</summary>
    public ReadOnlySpan<byte> Blob(int column) => raw.sqlite3_column_blob(_statement, column);

    /// <summary>Runs a statement that returns no rows (or ignores them) and makes it ready for the next use.</summary>
    public void Execute()
    {
        try
        {
            while (Step())
            {
            }
        }
        finally
        {
            Reset();
        }
    }

    /// <summary>
    /// Runs a statement that returns no rows and makes it ready for the next use, keeping its bindings: for statements
    /// whose every parameter is bound again before each run (one call into SQLite fewer than <see cref="Execute"/>).
    /// </summary>
    public void Run()
    {
        var rc = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (rc != raw.SQLITE_DONE && rc != raw.SQLITE_ROW)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    /// <summary>Makes the statement ready for the next use (always call after reading rows).</summary>
    public void Reset()
    {
        raw.sqlite3_reset(_statement);
        raw.sqlite3_clear_bindings(_statement);
    }

    public void Dispose() => _statement.Dispose();

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}
