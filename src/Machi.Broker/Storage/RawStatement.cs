using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Machi.Broker.Storage;

/// <summary>
/// A prepared statement driven through SQLite's C API on a Microsoft.Data.Sqlite connection, for the few
/// statements every write and read runs: parameters bound by position, blobs read as spans, nothing allocated per
/// execution (Microsoft.Data.Sqlite resolves parameter names and builds a reader on every call). It joins the
/// connection's current transaction like any other statement; failures surface as <see cref="SqliteException"/>.
/// Binding, stepping and resetting call SQLite with the statement's pointer (<see cref="Native"/>): SQLitePCL's own
/// calls take the statement as a SafeHandle, counted up and down around every call, and encode each bound string into
/// a new array (together ~3 % of a batch upsert's CPU, most of it on the single writer).
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    // The statement's pointer, valid until Dispose (the SafeHandle above owns it).
    private readonly nint _handle;

    // A bound string's UTF-8 bytes on their way in (SQLite copies them).
    private byte[] _utf8 = new byte[256];

    public RawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
        _handle = _statement.DangerousGetHandle();
    }

    public RawStatement Bind(int index, string value)
    {
        var max = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (_utf8.Length < max)
        {
            _utf8 = new byte[Math.Max(max, _utf8.Length * 2)];
        }

        return BindText(index, _utf8.AsSpan(0, Encoding.UTF8.GetBytes(value, _utf8)));
    }

    /// <summary>Binds UTF-8 bytes as TEXT.</summary>
    public RawStatement BindText(int index, ReadOnlySpan<byte> utf8)
    {
        // An empty span may have no address; SQLite would bind NULL for a null pointer, so point at a real byte.
        ref var first = ref utf8.IsEmpty ? ref MemoryMarshal.GetArrayDataReference(_utf8) : ref MemoryMarshal.GetReference(utf8);
        Check(Native.sqlite3_bind_text(_handle, index, ref first, utf8.Length, Native.Transient));
        return this;
    }

    /// <summary>Binds text, or leaves the parameter NULL when <paramref name="value"/> is null.</summary>
    public RawStatement BindOrNull(int index, string? value) => value is null ? this : Bind(index, value);

    public RawStatement Bind(int index, long value)
    {
        Check(Native.sqlite3_bind_int64(_handle, index, value));
        return this;
    }

    public RawStatement Bind(int index, double value)
    {
        Check(Native.sqlite3_bind_double(_handle, index, value));
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
        // An empty blob is a zero-length blob, not NULL (what a null pointer would bind).
        Check(blob.IsEmpty
            ? Native.sqlite3_bind_zeroblob(_handle, index, 0)
            : Native.sqlite3_bind_blob(_handle, index, ref MemoryMarshal.GetReference(blob), blob.Length, Native.Transient));
        return this;
    }

    /// <summary>Advances to the next row; false when the statement is done.</summary>
    public bool Step()
    {
        var rc = Native.sqlite3_step(_handle);
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

    public long Int64(int column) => Native.sqlite3_column_int64(_handle, column);

    public bool IsNull(int column) => Native.sqlite3_column_type(_handle, column) == raw.SQLITE_NULL;

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
        var rc = Native.sqlite3_step(_handle);
        _ = Native.sqlite3_reset(_handle);
        if (rc != raw.SQLITE_DONE && rc != raw.SQLITE_ROW)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    /// <summary>
    /// Runs an INSERT and returns the rowid it gave its row (SQLite's last insert rowid of the connection): cheaper than
    /// RETURNING, which collects the returned rows in a temporary table before the first step returns.
    /// </summary>
    public long Insert()
    {
        Execute();
        return Native.sqlite3_last_insert_rowid(_db.DangerousGetHandle());
    }

    /// <summary>Runs an INSERT OR IGNORE: the rowid it gave its row, or null when a conflict left the row out.</summary>
    public long? InsertOrIgnore()
    {
        Execute();
        var db = _db.DangerousGetHandle();
        return Native.sqlite3_changes(db) == 0 ? null : Native.sqlite3_last_insert_rowid(db);
    }

    /// <summary>Makes the statement ready for the next use (always call after reading rows).</summary>
    public void Reset()
    {
        // reset repeats the error of the last step (reported by Step already); clear_bindings cannot fail.
        _ = Native.sqlite3_reset(_handle);
        _ = Native.sqlite3_clear_bindings(_handle);
    }

    public void Dispose() => _statement.Dispose();

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    /// <summary>SQLite's C functions on a statement pointer, from the library SQLitePCL has loaded (same name, same file).</summary>
    private static class Native
    {
        private const string Library = "e_sqlite3";

        /// <summary>SQLITE_TRANSIENT: SQLite copies the bound bytes before the call returns.</summary>
        public static readonly nint Transient = -1;

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_bind_int64(nint statement, int index, long value);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_bind_double(nint statement, int index, double value);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_bind_text(nint statement, int index, ref byte utf8, int length, nint destructor);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_bind_blob(nint statement, int index, ref byte blob, int length, nint destructor);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_bind_zeroblob(nint statement, int index, int length);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_step(nint statement);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_reset(nint statement);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_clear_bindings(nint statement);

        [DllImport(Library, ExactSpelling = true)]
        public static extern long sqlite3_column_int64(nint statement, int column);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_column_type(nint statement, int column);

        [DllImport(Library, ExactSpelling = true)]
        public static extern long sqlite3_last_insert_rowid(nint db);

        [DllImport(Library, ExactSpelling = true)]
        public static extern int sqlite3_changes(nint db);
    }
}
