using Microsoft.Data.Sqlite;

namespace Machi.Broker.Storage;

/// <summary>Versioned, idempotent schema migrations for the embedded database, applied at start.</summary>
internal static class SqliteSchema
{
    /// <summary>Each step runs once, in order, inside a transaction; never edit a step that has shipped.</summary>
    private static readonly string[] Steps =
    [
        """
        CREATE TABLE tenants (
            name TEXT PRIMARY KEY,
            created_at TEXT NOT NULL
        ) WITHOUT ROWID;

        -- One row per entity; doc is the entity in EntityCodec's form (expanded names, context-free).
        CREATE TABLE entities (
            rid INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            doc BLOB NOT NULL,
            UNIQUE (tenant, id)
        );

        -- Every expanded IRI used as a type or attribute name, numbered once so index rows stay small.
        CREATE TABLE terms (
            id INTEGER PRIMARY KEY,
            iri TEXT NOT NULL UNIQUE
        );

        -- Type and attribute-name indexes (term ids), kept in the same transaction as the entity row.
        CREATE TABLE entity_types (
            tenant TEXT NOT NULL,
            type INTEGER NOT NULL,
            rid INTEGER NOT NULL,
            PRIMARY KEY (tenant, type, rid)
        ) WITHOUT ROWID;

        CREATE TABLE entity_attrs (
            tenant TEXT NOT NULL,
            name INTEGER NOT NULL,
            rid INTEGER NOT NULL,
            PRIMARY KEY (tenant, name, rid)
        ) WITHOUT ROWID;

        -- JSON-LD contexts hosted by the broker (POST /jsonldContexts) or created implicitly for Link headers.
        CREATE TABLE jsonld_contexts (
            local_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
        """
        -- Context source registrations (clause 5.2.9) per tenant; doc is the registration with names expanded.
        CREATE TABLE csource_registrations (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            doc TEXT NOT NULL,
            created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;
        """,
    ];

    public static void Migrate(SqliteConnection connection)
    {
        SqliteEntityStore.Execute(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
        for (var version = 1; version <= Steps.Length; version++)
        {
            using var tx = connection.BeginTransaction(deferred: false);
            using var check = connection.CreateCommand();
            check.Transaction = tx;
            check.CommandText = "SELECT count(*) FROM schema_migrations WHERE version = $v";
            check.Parameters.AddWithValue("$v", version);
            if ((long)check.ExecuteScalar()! > 0)
            {
                continue;
            }

            using var step = connection.CreateCommand();
            step.Transaction = tx;
            step.CommandText = Steps[version - 1];
            step.ExecuteNonQuery();
            using var mark = connection.CreateCommand();
            mark.Transaction = tx;
            mark.CommandText = "INSERT INTO schema_migrations (version, applied_at) VALUES ($v, $at)";
            mark.Parameters.AddWithValue("$v", version);
            mark.Parameters.AddWithValue("$at", DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
            mark.ExecuteNonQuery();
            tx.Commit();
        }
    }
}
