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
        -- Attribute values for q comparisons. attr is the attribute's term id for values as written (numbers,
        -- strings, booleans as 0/1) and its negation for date-times as UTC ticks. Rows only narrow candidates.
        CREATE TABLE entity_values (
            tenant TEXT NOT NULL,
            attr INTEGER NOT NULL,
            value NOT NULL,
            rid INTEGER NOT NULL,
            PRIMARY KEY (tenant, attr, value, rid)
        ) WITHOUT ROWID;

        -- One box per entity and GeoProperty name for geo-queries; id = rid * 1024 + the name's ordinal. Which
        -- GeoProperty a box belongs to is left to the evaluator: an auxiliary column costs a lookup per row.
        CREATE VIRTUAL TABLE entity_geo USING rtree(id, min_lon, max_lon, min_lat, max_lat);

        -- Every committed entity change, in commit order, written in the transaction of the change itself: the
        -- durable source that subscriptions, server-sent events and the temporal history read from (an outbox).
        -- before/after are the entity in EntityCodec's form (null when it did not exist / no longer exists).
        -- AUTOINCREMENT: a seq is never reused, even after the log has been pruned empty (consumers hold cursors).
        CREATE TABLE entity_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            before BLOB,
            after BLOB,
            at INTEGER NOT NULL
        );

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
        """
        -- Subscriptions (clause 5.2.12) per tenant: doc is the subscription as its client wrote it (names in its own
        -- @context, kept in doc); the delivery counters live in columns so that an update never resets them.
        CREATE TABLE subscriptions (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            doc TEXT NOT NULL,
            created_at TEXT NOT NULL,
            modified_at TEXT NOT NULL,
            times_sent INTEGER NOT NULL DEFAULT 0,
            times_failed INTEGER NOT NULL DEFAULT 0,
            last_notification TEXT,
            last_success TEXT,
            last_failure TEXT,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;

        -- Notifications matched but not yet delivered, written with the change-log cursor in one transaction and
        -- deleted once the receiver has acknowledged them. dead = 1: given up after the configured attempts.
        CREATE TABLE notification_outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant TEXT NOT NULL,
            subscription_id TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            notification_id TEXT NOT NULL,
            notified_at TEXT NOT NULL,
            data TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0,
            dead INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX notification_outbox_pending ON notification_outbox (endpoint, dead, seq);

        -- Where each consumer of the change log (temporal history, subscriptions, …) has got to: the seq of the last
        -- change it has fully processed. The log is never pruned past the smallest of these.
        CREATE TABLE IF NOT EXISTS change_cursors (
            consumer TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO change_cursors (consumer, seq) VALUES ('temporal', 0);

        -- Temporal history (clause 4.5.7): one row per attribute instance as it was written, derived from the
        -- change log by the "temporal" consumer. Times are UTC ticks; observed_at is null when the instance had
        -- none. value is the payload as JSON; instance the whole instance (metadata, sub-attributes) in
        -- EntityCodec's form, null for a deletion (deleted = 1, value "urn:ngsi-ld:null").
        CREATE TABLE attribute_history (
            id INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            attr TEXT NOT NULL,
            dataset_id TEXT,
            instance_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            observed_at INTEGER,
            created_at INTEGER NOT NULL,
            modified_at INTEGER NOT NULL,
            value TEXT NOT NULL,
            instance BLOB,
            deleted INTEGER NOT NULL DEFAULT 0
        );
        -- One index: every read names the entity (and usually the attribute); modifiedAt/createdAt orders and
        -- instanceId lookups are resolved within that range. Each extra index would be one more random page write
        -- per recorded instance, on the path of every entity write.
        CREATE INDEX attribute_history_observed ON attribute_history (tenant, entity_id, attr, coalesce(observed_at, modified_at));

        -- The entities that have a history, with their types, so that history outlives the entity.
        CREATE TABLE temporal_entities (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            types TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            modified_at INTEGER NOT NULL,
            deleted_at INTEGER,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;
        """,
        """
        -- The temporal history, recorded by the entity writer in the transaction of the write itself (no longer by a
        -- consumer of the change log: that read every change back, decoded it twice and held the writer for whole
        -- batches). Rows are clustered by entity, attribute and time, so one attribute's history is one contiguous
        -- range of pages, read in order without a lookup per row; keys are integers (entity number, term id), so the
        -- tree stays small and its pages stay in the cache.
        CREATE TABLE history_entities (
            hid INTEGER PRIMARY KEY,
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            types TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            modified_at INTEGER NOT NULL,
            deleted_at INTEGER,
            UNIQUE (tenant, id)
        );

        -- t: coalesce(observed_at, modified_at) in UTC ticks. n: the instance number, unique in the database —
        -- (change seq << 16) | ordinal for an instance recorded from a write (instanceId "…:{seq}-{ordinal}"),
        -- -k for the k-th instance added through the temporal API (instanceId "…:h{k}"). value is the payload as
        -- JSON; instance the whole instance (metadata, sub-attributes) in EntityCodec's form, null for a deletion
        -- (deleted = 1, value "urn:ngsi-ld:null").
        CREATE TABLE history (
            hid INTEGER NOT NULL,
            attr INTEGER NOT NULL,
            t INTEGER NOT NULL,
            n INTEGER NOT NULL,
            dataset_id TEXT,
            kind INTEGER NOT NULL,
            observed_at INTEGER,
            created_at INTEGER NOT NULL,
            modified_at INTEGER NOT NULL,
            value TEXT NOT NULL,
            instance BLOB,
            deleted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hid, attr, t, n)
        ) WITHOUT ROWID;

        -- Named counters (the number of the last instance added through the temporal API).
        CREATE TABLE counters (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
        """
        -- Who may see an entity (Access.EntityAccess): 0 internal, 1 public, 2 personal with its owner (a resident's
        -- subject id) and data category. Kept by the writer from the entity's machi:owner/dataCategory/visibility.
        ALTER TABLE entities ADD COLUMN access INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE entities ADD COLUMN owner TEXT;
        ALTER TABLE entities ADD COLUMN category TEXT;
        CREATE INDEX entities_owner ON entities (tenant, owner) WHERE owner IS NOT NULL;
        ALTER TABLE history_entities ADD COLUMN access INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE history_entities ADD COLUMN owner TEXT;
        ALTER TABLE history_entities ADD COLUMN category TEXT;

        -- Residents' consents (Access.Consent) with their receipts (JSON), times in UTC ticks.
        CREATE TABLE consents (
            id TEXT PRIMARY KEY,
            resident TEXT NOT NULL,
            client_id TEXT NOT NULL,
            purpose TEXT NOT NULL,
            categories TEXT NOT NULL,
            granted_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            terms_version TEXT NOT NULL,
            revoked_at INTEGER,
            receipt TEXT NOT NULL,
            revocation_receipt TEXT
        ) WITHOUT ROWID;
        CREATE INDEX consents_resident ON consents (resident, granted_at);

        -- One row per category of each active consent: what a query joins to let a service see personal entities.
        CREATE TABLE consent_grants (
            client_id TEXT NOT NULL,
            purpose TEXT NOT NULL,
            resident TEXT NOT NULL,
            category TEXT NOT NULL,
            consent_id TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (client_id, purpose, resident, category, consent_id)
        ) WITHOUT ROWID;
        CREATE INDEX consent_grants_consent ON consent_grants (consent_id);
        CREATE INDEX consent_grants_resident ON consent_grants (resident);
        """,
        """
        -- Entity maps (clause 5.2.35): which entities a query found where, kept for paging through them until they
        -- expire (UTC ticks). owner: who made the map (only they read it). entries: the map as JSON, in query order.
        CREATE TABLE entity_maps (
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            owner TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            entries TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;
        """,
        """
        -- The value and geo indexes are held in memory from now on (MemoryQueryIndex, rebuilt from the entities at start).
        DROP TABLE entity_values;
        DROP TABLE entity_geo;
        """,
        """
        -- The attribute-name index is held in memory as well (MemoryQueryIndex): eight rows an entity of a batch were a
        -- fifth of what the single writer did.
        DROP TABLE entity_attrs;
        """,
    ];

    /// <summary>The version that added access marks to entities: entities stored before it get theirs when it is applied.</summary>
    public const int AccessVersion = 5;

    /// <summary>The version that moved the temporal history into the entity writer: old history is copied over when it is applied.</summary>
    public const int HistoryVersion = 4;

    /// <summary>The version whose tables hold the query indexes: entities stored before it are indexed when it is applied.</summary>
    public const int QueryIndexVersion = 2;

    /// <param name="afterStep">Runs inside a step's transaction after its SQL, for data the SQL alone cannot derive.</param>
    /// <param name="upTo">The last step to apply (tests build databases of earlier versions with it).</param>
    public static void Migrate(SqliteConnection connection, Action<int, SqliteTransaction>? afterStep = null, int upTo = int.MaxValue)
    {
        SqliteEntityStore.Execute(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
        for (var version = 1; version <= Math.Min(Steps.Length, upTo); version++)
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
            afterStep?.Invoke(version, tx);
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
