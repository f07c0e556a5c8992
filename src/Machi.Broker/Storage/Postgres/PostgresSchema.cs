using System.Globalization;
using Npgsql;

namespace Machi.Broker.Storage.Postgres;

/// <summary>
/// Versioned, idempotent schema migrations for PostgreSQL 15+ with PostGIS, applied at start. Each step runs in its
/// own transaction under a transaction-level advisory lock, so nodes that start together apply every step exactly
/// once: the second waits for the first, then finds the step recorded and skips it.
/// </summary>
/// <remarks>
/// The logical tables are SQLite's (<see cref="SqliteSchema"/>). Every primary and unique key leads with tenant, and
/// no table has a foreign key, so Citus can distribute the entity tables by tenant (docs/scaling.md); terms, tenants
/// and hosted contexts are reference data. doc is bytea in <see cref="Machi.Ngsi.Model.EntityCodec"/>'s form, not
/// jsonb: the broker never asks the database to look inside an entity (the index tables and the evaluator do that),
/// the same bytes go to the change log and to every backend, and decoding skips a JSON re-parse. Times are UTC
/// ticks (bigint) as in SQLite, so history instance ids and timestamps round-trip to the 100 ns.
/// </remarks>
internal static class PostgresSchema
{
    /// <summary>The key of the advisory lock migrations run under (any constant shared by every node).</summary>
    internal const long MigrationLock = 0x6D61636869_01;

    /// <summary>Each step runs once, in order, inside a transaction; never edit a step that has shipped.</summary>
    private static readonly string[] Steps =
    [
        """
        CREATE EXTENSION IF NOT EXISTS postgis;

        CREATE TABLE tenants (
            name text PRIMARY KEY,
            created_at text NOT NULL
        );

        -- One row per entity; doc is the entity in EntityCodec's form (expanded names, context-free). rid numbers
        -- the entity for the index tables (small keys); it is unique with the tenant (Citus needs the tenant in it).
        CREATE SEQUENCE entity_rid_seq;
        CREATE TABLE entities (
            tenant text NOT NULL,
            id text NOT NULL,
            rid bigint NOT NULL DEFAULT nextval('entity_rid_seq'),
            doc bytea NOT NULL,
            PRIMARY KEY (tenant, id),
            UNIQUE (tenant, rid)
        );

        -- Every expanded IRI used as a type or attribute name, numbered once (reference data under Citus).
        CREATE TABLE terms (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            iri text NOT NULL UNIQUE
        );

        CREATE TABLE entity_types (
            tenant text NOT NULL,
            type bigint NOT NULL,
            rid bigint NOT NULL,
            PRIMARY KEY (tenant, type, rid)
        );

        CREATE TABLE entity_attrs (
            tenant text NOT NULL,
            name bigint NOT NULL,
            rid bigint NOT NULL,
            PRIMARY KEY (tenant, name, rid)
        );

        -- Attribute values for q comparisons, split by how they compare: numbers (booleans as 0/1; date-times as UTC
        -- ticks under the negated term id) and text (byte order, as the evaluator compares). Rows only narrow
        -- candidates, so values may be coarser than the truth (long strings are kept as a prefix, ticks as doubles)
        -- as long as the order is kept: the planner compares with the same coarsening, inclusively.
        CREATE TABLE entity_numbers (
            tenant text NOT NULL,
            attr bigint NOT NULL,
            value double precision NOT NULL,
            rid bigint NOT NULL,
            PRIMARY KEY (tenant, attr, value, rid)
        );

        CREATE TABLE entity_strings (
            tenant text NOT NULL,
            attr bigint NOT NULL,
            value text COLLATE "C" NOT NULL,
            rid bigint NOT NULL,
            PRIMARY KEY (tenant, attr, value, rid)
        );

        -- One geography per entity and GeoProperty name (all its instances collected, edges split to 0.05° so the
        -- geodesic edges stay within metres of the straight lon/lat edges the evaluator sees). geog is null when the
        -- value cannot be a geography (coordinates out of range): such an entity is a candidate for every geo-query.
        CREATE TABLE entity_geo (
            tenant text NOT NULL,
            rid bigint NOT NULL,
            attr bigint NOT NULL,
            geog geography(Geometry, 4326),
            PRIMARY KEY (tenant, rid, attr)
        );
        CREATE INDEX entity_geo_geog ON entity_geo USING gist (geog);
        CREATE INDEX entity_geo_unindexed ON entity_geo (tenant, attr) WHERE geog IS NULL;

        -- Every committed entity change, in commit order (writers serialise on an advisory lock while they log, so a
        -- smaller seq never commits after a larger one). A sequence never hands a number out twice.
        CREATE SEQUENCE entity_change_seq;
        CREATE TABLE entity_changes (
            tenant text NOT NULL,
            seq bigint NOT NULL DEFAULT nextval('entity_change_seq'),
            entity_id text NOT NULL,
            kind smallint NOT NULL,
            before bytea,
            after bytea,
            at bigint NOT NULL,
            PRIMARY KEY (tenant, seq)
        );
        CREATE INDEX entity_changes_seq ON entity_changes (seq);

        CREATE TABLE change_cursors (
            consumer text PRIMARY KEY,
            seq bigint NOT NULL
        );

        -- JSON-LD contexts hosted by the broker (reference data under Citus).
        CREATE TABLE jsonld_contexts (
            local_id text PRIMARY KEY,
            kind text NOT NULL,
            body text NOT NULL,
            created_at text NOT NULL
        );

        CREATE TABLE csource_registrations (
            tenant text NOT NULL,
            id text NOT NULL,
            doc text NOT NULL,
            created_at text NOT NULL,
            modified_at text NOT NULL,
            PRIMARY KEY (tenant, id)
        );

        CREATE TABLE subscriptions (
            tenant text NOT NULL,
            id text NOT NULL,
            doc text NOT NULL,
            created_at text NOT NULL,
            modified_at text NOT NULL,
            times_sent bigint NOT NULL DEFAULT 0,
            times_failed bigint NOT NULL DEFAULT 0,
            last_notification text,
            last_success text,
            last_failure text,
            PRIMARY KEY (tenant, id)
        );

        CREATE TABLE notification_outbox (
            tenant text NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            subscription_id text NOT NULL,
            endpoint text NOT NULL,
            entity_id text NOT NULL,
            notification_id text NOT NULL,
            notified_at text NOT NULL,
            data text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at bigint NOT NULL DEFAULT 0,
            dead boolean NOT NULL DEFAULT false,
            last_error text,
            PRIMARY KEY (tenant, seq)
        );
        CREATE INDEX notification_outbox_pending ON notification_outbox (endpoint, dead, seq);

        -- The temporal history, recorded by the entity writer in the write's own transaction.
        CREATE SEQUENCE history_entity_seq;
        CREATE TABLE history_entities (
            tenant text NOT NULL,
            id text NOT NULL,
            hid bigint NOT NULL DEFAULT nextval('history_entity_seq'),
            types text NOT NULL,
            created_at bigint NOT NULL,
            modified_at bigint NOT NULL,
            deleted_at bigint,
            PRIMARY KEY (tenant, id),
            UNIQUE (tenant, hid)
        );

        -- Partitioned by t (coalesce(observed_at, modified_at), UTC ticks) into calendar months, created ahead by the
        -- store (history_yYYYYmMM); the default partition takes what falls outside (an observedAt years back).
        -- Old months are dropped whole (DROP TABLE) instead of deleted row by row.
        CREATE TABLE history (
            tenant text NOT NULL,
            hid bigint NOT NULL,
            attr bigint NOT NULL,
            t bigint NOT NULL,
            n bigint NOT NULL,
            dataset_id text,
            kind smallint NOT NULL,
            observed_at bigint,
            created_at bigint NOT NULL,
            modified_at bigint NOT NULL,
            value text NOT NULL,
            instance bytea,
            deleted boolean NOT NULL DEFAULT false,
            PRIMARY KEY (tenant, hid, attr, t, n)
        ) PARTITION BY RANGE (t);
        CREATE TABLE history_default PARTITION OF history DEFAULT;

        CREATE TABLE counters (
            name text PRIMARY KEY,
            value bigint NOT NULL
        );
        """,
        """
        -- Who may see an entity (Access.EntityAccess): 0 internal, 1 public, 2 personal with its owner (a resident's
        -- subject id) and data category, kept by the writer as SQLite's is. Entities stored before this step get
        -- their marks in the step's own transaction (MarkAccessAsync).
        ALTER TABLE entities ADD COLUMN access smallint NOT NULL DEFAULT 0;
        ALTER TABLE entities ADD COLUMN owner text;
        ALTER TABLE entities ADD COLUMN category text;
        CREATE INDEX entities_owner ON entities (tenant, owner) WHERE owner IS NOT NULL;
        ALTER TABLE history_entities ADD COLUMN access smallint NOT NULL DEFAULT 0;
        ALTER TABLE history_entities ADD COLUMN owner text;
        ALTER TABLE history_entities ADD COLUMN category text;

        -- Residents' consents (Access.Consent) with their receipts (JSON), times in UTC ticks. Not per tenant: a
        -- consent covers the resident's data in every tenant (reference data under Citus).
        CREATE TABLE consents (
            id text PRIMARY KEY,
            resident text NOT NULL,
            client_id text NOT NULL,
            purpose text NOT NULL,
            categories text NOT NULL,
            granted_at bigint NOT NULL,
            expires_at bigint NOT NULL,
            terms_version text NOT NULL,
            revoked_at bigint,
            receipt text NOT NULL,
            revocation_receipt text
        );
        CREATE INDEX consents_resident ON consents (resident, granted_at);

        -- One row per category of each active consent: what a query's access condition looks up by its key.
        CREATE TABLE consent_grants (
            client_id text NOT NULL,
            purpose text NOT NULL,
            resident text NOT NULL,
            category text NOT NULL,
            consent_id text NOT NULL,
            expires_at bigint NOT NULL,
            PRIMARY KEY (client_id, purpose, resident, category, consent_id)
        );
        CREATE INDEX consent_grants_consent ON consent_grants (consent_id);
        CREATE INDEX consent_grants_resident ON consent_grants (resident);

        -- The access log (Access.PostgresAccessLog): one hash chain per node, each numbered from 1; a redacted record
        -- keeps node, seq, at, digest and hash. Times in UTC ticks.
        CREATE TABLE access_log (
            node text NOT NULL,
            seq bigint NOT NULL,
            at bigint NOT NULL,
            resident text,
            client_id text,
            subject text,
            purpose text,
            emergency_reason text,
            operation text,
            tenant text,
            entity_id text,
            attributes text,
            redacted boolean NOT NULL DEFAULT false,
            digest text NOT NULL,
            hash text NOT NULL,
            PRIMARY KEY (node, seq)
        );
        CREATE INDEX access_log_resident ON access_log (resident, at);
        CREATE INDEX access_log_client ON access_log (client_id, at);
        """,
        """
        -- Entity maps (clause 5.2.35): as in the embedded database; tenant leads the key (Citus: distributed by tenant).
        CREATE TABLE entity_maps (
            tenant text NOT NULL,
            id text NOT NULL,
            owner text NOT NULL,
            expires_at bigint NOT NULL,
            entries text NOT NULL,
            PRIMARY KEY (tenant, id)
        );
        """,
        """
        -- An entity's attribute names (term ids, ascending) in its own row instead of a row each in entity_attrs: a
        -- batch upsert wrote ~8 attribute rows an entity, the second-largest part of PostgreSQL's time. The GIN index
        -- finds the entities having a name; a probe on a candidate reads its row by rid. Existing rows are converted.
        ALTER TABLE entities ADD COLUMN attrs bigint[] NOT NULL DEFAULT '{}';
        UPDATE entities e SET attrs = a.names
        FROM (SELECT tenant, rid, array_agg(name ORDER BY name) AS names FROM entity_attrs GROUP BY tenant, rid) a
        WHERE e.tenant = a.tenant AND e.rid = a.rid;
        CREATE INDEX entities_attrs ON entities USING gin (attrs);
        DROP TABLE entity_attrs;
        """,
        """
        -- The geographies as points and shapes on the lon/lat plane, for nearest-first scans: PostGIS orders them about
        -- ten times faster there than on the sphere (PostgresQueryPlanner.Around bounds what the plane may miss).
        CREATE INDEX entity_geo_plane ON entity_geo USING gist ((geog::geometry));
        """,
    ];

    /// <summary>The version that added access marks to entities: entities stored before it get theirs when it is applied.</summary>
    public const int AccessVersion = 2;

    /// <summary>The version that moved the attribute names from entity_attrs into entities.attrs.</summary>
    public const int AttrsVersion = 4;

    public static int LatestVersion => Steps.Length;

    /// <summary>
    /// Applies the steps not applied yet (up to <paramref name="upTo"/>); safe from many nodes at once.
    /// <paramref name="afterStep"/> runs after a step's SQL in the step's transaction, for data a step must convert in
    /// code (what SQL cannot read, such as the entity documents).
    /// </summary>
    public static async Task MigrateAsync(
        NpgsqlDataSource dataSource, CancellationToken cancellationToken, int upTo = int.MaxValue,
        Func<int, NpgsqlConnection, NpgsqlTransaction, Task>? afterStep = null)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        for (var version = 1; version <= Math.Min(Steps.Length, upTo); version++)
        {
            await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, $"SELECT pg_advisory_xact_lock({MigrationLock})", cancellationToken).ConfigureAwait(false);

            // Under the lock: the table is created once, by whoever got the lock first.
            await ExecuteAsync(connection, tx, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)", cancellationToken).ConfigureAwait(false);
            await using (var check = Command("SELECT count(*) FROM schema_migrations WHERE version = $1", connection, tx))
            {
                check.Parameters.Add(new NpgsqlParameter { Value = version });
                if ((long)(await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! > 0)
                {
                    await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }
            }

            await ExecuteAsync(connection, tx, Steps[version - 1], cancellationToken).ConfigureAwait(false);
            if (afterStep is not null)
            {
                await afterStep(version, connection, tx).ConfigureAwait(false);
            }

            await ExecuteAsync(connection, tx, string.Create(CultureInfo.InvariantCulture, $"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, now())"), cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The versions applied, in order.</summary>
    public static async Task<IReadOnlyList<int>> AppliedAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var cmd = dataSource.CreateCommand("SELECT version FROM schema_migrations ORDER BY version");
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var versions = new List<int>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            versions.Add(r.GetInt32(0));
        }

        return versions;
    }

    /// <summary>The name of the history partition of the month holding <paramref name="month"/>.</summary>
    public static string HistoryPartition(DateTime month) => string.Create(CultureInfo.InvariantCulture, $"history_y{month.Year:D4}m{month.Month:D2}");

    /// <summary>
    /// Creates the monthly history partitions from <paramref name="from"/>'s month for <paramref name="months"/>
    /// months, if missing (under the migration lock, so two nodes never race on one). A month whose rows already
    /// went to the default partition is left there (PostgreSQL refuses the new partition; it is logged by the caller).
    /// </summary>
    public static async Task EnsureHistoryPartitionsAsync(NpgsqlDataSource dataSource, DateTimeOffset from, int months, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var start = new DateTime(from.UtcDateTime.Year, from.UtcDateTime.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        for (var i = 0; i < months; i++)
        {
            var month = start.AddMonths(i);
            await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, $"SELECT pg_advisory_xact_lock({MigrationLock})", cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, tx, string.Create(CultureInfo.InvariantCulture,
                $"CREATE TABLE IF NOT EXISTS {HistoryPartition(month)} PARTITION OF history FOR VALUES FROM ({month.Ticks}) TO ({month.AddMonths(1).Ticks})"), cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A statement of a migration, without the connection's command timeout: a step over a city's tables (or a node
    /// waiting for another's step) takes as long as it takes, where a timeout would leave the node unable to start.
    /// </summary>
    internal static NpgsqlCommand Command(string sql, NpgsqlConnection connection, NpgsqlTransaction tx) =>
        new(sql, connection, tx) { CommandTimeout = 0 };

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var cmd = Command(sql, connection, tx);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
