namespace Machi.Bench.Baseline;

/// <summary>
/// The entity table and connection settings the raw baseline uses: the broker's own layout (a rowid table with a
/// unique (tenant, id) key, src/Machi.Broker/Storage/SqliteSchema.cs) without its type/attribute index tables.
/// </summary>
internal static class StorageSchema
{
    public const string CreateEntities = """
        CREATE TABLE IF NOT EXISTS entities(
            rid         INTEGER PRIMARY KEY,
            tenant      TEXT    NOT NULL,
            id          TEXT    NOT NULL,
            types       TEXT    NOT NULL,
            created_at  INTEGER NOT NULL,
            modified_at INTEGER NOT NULL,
            doc         BLOB    NOT NULL,
            UNIQUE (tenant, id)
        )
        """;

    /// <summary>The default tenant (no NGSILD-Tenant header).</summary>
    public const string DefaultTenant = "";

    /// <summary>The Vehicle type expanded against the core @context's default vocabulary, as the broker stores it.</summary>
    public const string VehicleTypes = "https://uri.etsi.org/ngsi-ld/default-context/Vehicle";

    /// <summary>
    /// Set on every connection. WAL lets readers run alongside the single writer; a 256 MiB memory map lets the
    /// per-worker read connections share the OS page cache instead of each filling its own; busy_timeout covers
    /// the moments a checkpoint holds a lock. synchronous is added from the command line (NORMAL or FULL). The page
    /// size is the broker's for the databases it creates (it takes effect only on the first connection, which
    /// creates the file).
    /// </summary>
    public const string ConnectionPragmas = """
        PRAGMA page_size = 16384;
        PRAGMA journal_mode = WAL;
        PRAGMA busy_timeout = 5000;
        PRAGMA mmap_size = 268435456;
        """;

    public const string SelectDocument = "SELECT doc FROM entities WHERE tenant = $tenant AND id = $id";

    public const string InsertEntity = """
        INSERT INTO entities(tenant, id, types, created_at, modified_at, doc)
        VALUES ($tenant, $id, $types, $now, $now, $doc)
        """;

    public const string UpsertEntity = """
        INSERT INTO entities(tenant, id, types, created_at, modified_at, doc)
        VALUES ($tenant, $id, $types, $now, $now, $doc)
        ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, modified_at = excluded.modified_at, doc = excluded.doc
        """;

    /// <summary>Read-modify-write of the stored document in one statement: RFC 7396 merge of the changed
    /// attributes. doc holds UTF-8 JSON text in a BLOB, so it is cast to TEXT for json_patch and back.</summary>
    public const string PatchDocument = """
        UPDATE entities SET doc = CAST(json_patch(CAST(doc AS TEXT), $patch) AS BLOB), modified_at = $now
        WHERE tenant = $tenant AND id = $id
        """;
}
