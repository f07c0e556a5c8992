using System.Data;
using System.Data.Common;
using System.Text.Json.Nodes;
using Machi.Broker.Access;
using Machi.Broker.Storage;
using Machi.Broker.Storage.Postgres;
using Machi.Trust;
using Machi.Trust.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Machi.Broker.Moving;

/// <summary>What an export wrote or an import read: the archive's parts with their rows.</summary>
public sealed record MoveSummary(string Backend, IReadOnlyList<ArchivePart> Parts);

/// <summary>
/// Moves all of a city's data between the embedded SQLite data directory and PostgreSQL (<c>machi export</c>,
/// <c>machi import</c>) through a <see cref="CityArchive"/>: the broker's tables (entities with their access marks,
/// history, subscriptions with their counters and outbox, the change log and its cursors, registrations, hosted
/// contexts, consents with receipts and grants), Trust's tables (accounts with their password hashes, OAuth clients
/// with their secret hashes, authorizations, tokens, signing keys), the data-protection keys and the access log, each
/// row as stored. The index tables (types, attributes, values, geo) are not carried: they are derived, and each
/// backend's writer code builds its own after the rows are in. The portal's and Snowplow Navi's tables stay in the
/// data directory's SQLite file on either backend, so they do not move.
/// </summary>
public static class CityMove
{
    public const string SqliteSource = "sqlite";
    public const string PostgresSource = "postgresql";
    private const string AccessLogPart = "access_log";
    private const string DataProtectionPart = "trust_data_protection_keys";

    /// <summary>A broker table the archive carries, in import order; <see cref="SqliteSelect"/> when SQLite's differs.</summary>
    /// <param name="SqliteLacks">A column PostgreSQL keeps and SQLite derives (history's tenant, from its entity).</param>
    /// <param name="Seeded">The store's migrations may put rows in it (a counter, a cursor): the archive's replace them.</param>
    private sealed record BrokerTable(string Name, string Order, string? SqliteSelect = null, string? SqliteLacks = null, bool Seeded = false)
    {
        public string Select(bool sqlite) => sqlite && SqliteSelect is not null ? SqliteSelect : $"SELECT * FROM {Name} ORDER BY {Order}";
    }

    private static readonly BrokerTable[] BrokerTables =
    [
        new("tenants", "name"),
        new("terms", "id"),
        new("entities", "rid"),
        new("history_entities", "hid"),
        new("history", "hid, attr, t, n", "SELECT e.tenant, h.* FROM history h JOIN history_entities e ON e.hid = h.hid ORDER BY h.hid, h.attr, h.t, h.n", "tenant"),
        new("counters", "name", Seeded: true),
        new("jsonld_contexts", "local_id"),
        new("csource_registrations", "tenant, id"),
        new("subscriptions", "tenant, id"),
        new("notification_outbox", "seq"),
        new("entity_changes", "seq"),
        new("change_cursors", "consumer", Seeded: true),
        new("consents", "id"),
        new("consent_grants", "consent_id, category"),
    ];

    /// <summary>Tables whose rows mean a city is there already.</summary>
    private static IEnumerable<string> Occupying(IReadOnlyList<TrustTable> trust) =>
        BrokerTables.Where(t => !t.Seeded).Select(t => t.Name)
            .Concat(trust.Select(t => t.Name).Where(t => t is "trust_users" or "trust_applications"));

    public static async Task<MoveSummary> ExportAsync(IConfiguration configuration, string archivePath, string machiVersion, CancellationToken cancellationToken)
    {
        var database = configuration["Broker:Database"];
        var postgres = !string.IsNullOrWhiteSpace(database);
        var data = TrustModule.DataDirectory(configuration);
        if (!postgres && !File.Exists(Path.Combine(data, "machi.db")))
        {
            throw new MoveException($"there is no city in {data}: machi.db is missing (--data names the data directory of the city to export)");
        }

        var archive = CityArchive.Writer.Create(archivePath, machiVersion);
        var nodes = new SortedSet<string>(StringComparer.Ordinal);
        await using (var trust = await TrustAdmin.OpenAsync(configuration, cancellationToken).ConfigureAwait(false))
        {
            var trustTables = TrustTablesOf(trust);
            if (postgres)
            {
                await MigrateAsync(new PostgresEntityStore(database!, NullLogger<PostgresEntityStore>.Instance), cancellationToken).ConfigureAwait(false);
                await using var dataSource = NpgsqlDataSource.Create(database!);
                await using var c = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

                // One snapshot: every part as of the same moment, beside running nodes.
                await using var tx = await c.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
                await ExportTablesAsync(archive, c, tx, sqlite: false, trustTables, cancellationToken).ConfigureAwait(false);
                await archive.PartAsync(DataProtectionPart, part => TableCopy.ExportAsync(c, tx,
                    "SELECT \"FriendlyName\", \"Xml\" FROM trust_data_protection_keys ORDER BY \"Id\"", part, cancellationToken)).ConfigureAwait(false);
                await archive.PartAsync(AccessLogPart, part => TableCopy.ExportAsync(c, tx, "SELECT * FROM access_log ORDER BY node, seq", part, cancellationToken)).ConfigureAwait(false);
                nodes.UnionWith(await NodesAsync(c, tx, cancellationToken).ConfigureAwait(false));
            }
            else
            {
                await MigrateAsync(new SqliteEntityStore(Path.Combine(data, "machi.db"), NullLogger<SqliteEntityStore>.Instance), cancellationToken).ConfigureAwait(false);
                await using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(data, "machi.db"), Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString()))
                {
                    await c.OpenAsync(cancellationToken).ConfigureAwait(false);
                    await using var tx = c.BeginTransaction(deferred: true);
                    await ExportTablesAsync(archive, c, tx, sqlite: true, trustTables, cancellationToken).ConfigureAwait(false);
                }

                await archive.PartAsync(DataProtectionPart, async part =>
                {
                    var directory = new DirectoryInfo(TrustDatabase.DataProtectionKeyDirectory(data));
                    foreach (var file in (directory.Exists ? directory.GetFiles("*.xml") : []).OrderBy(f => f.Name, StringComparer.Ordinal))
                    {
                        var xml = await File.ReadAllTextAsync(file.FullName, cancellationToken).ConfigureAwait(false);
                        await part.RowAsync(json =>
                        {
                            json.WriteString("FriendlyName", Path.GetFileNameWithoutExtension(file.Name));
                            json.WriteString("Xml", xml);
                        }).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);

                // The journal, then the table, then the journal's records the table does not have yet, read without
                // writing: a running server's log is left alone.
                await using var log = new SqliteAccessLog(Path.Combine(data, "access-log.db"));
                var journaled = log.JournalEntries();
                await using var logConnection = log.OpenTable();
                await using var logTx = logConnection.BeginTransaction(deferred: true);
                // The table stores each record's bytes; the archive holds the columns PostgreSQL's log has too.
                await archive.PartAsync(AccessLogPart, async part =>
                {
                    var indexed = 0L;
                    foreach (var (at, entry) in SqliteAccessLog.Rows(logConnection, logTx))
                    {
                        await part.RowAsync(json => WriteAccessLogRow(json, at, entry)).ConfigureAwait(false);
                        indexed = entry.Seq;
                        if (entry.Record is { } record)
                        {
                            nodes.Add(record.Node);
                        }
                    }

                    foreach (var entry in journaled.Where(j => j.Seq > indexed))
                    {
                        await part.RowAsync(json => WriteAccessLogRow(json, entry.Record!.At.UtcTicks, entry)).ConfigureAwait(false);
                        nodes.Add(entry.Record!.Node);
                    }
                }).ConfigureAwait(false);
            }
        }

        await archive.CompleteAsync(postgres ? PostgresSource : SqliteSource, new JsonObject
        {
            ["accessLogNodes"] = new JsonArray([.. nodes.Select(n => (JsonNode)n)]),
        }).ConfigureAwait(false);
        return new MoveSummary(postgres ? PostgresSource : SqliteSource, archive.Parts);
    }

    public static async Task<MoveSummary> ImportAsync(IConfiguration configuration, string archivePath, string machiVersion, CancellationToken cancellationToken)
    {
        var archive = await CityArchive.OpenAsync(archivePath, machiVersion, cancellationToken).ConfigureAwait(false);
        var database = configuration["Broker:Database"];
        var postgres = !string.IsNullOrWhiteSpace(database);
        var chain = ImportedChain(archive, postgres, configuration);
        if (!postgres)
        {
            // The archive has been checked: its data goes into a directory for Machi's account alone, as serve makes it.
            PrivateDirectory.Create(TrustModule.DataDirectory(configuration));
        }

        await using var trust = await TrustAdmin.OpenAsync(configuration, cancellationToken).ConfigureAwait(false);
        var trustTables = TrustTablesOf(trust);
        if (postgres)
        {
            await ImportPostgresAsync(archive, database!, trustTables, chain, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await ImportSqliteAsync(archive, TrustModule.DataDirectory(configuration), trustTables, cancellationToken).ConfigureAwait(false);
        }

        return new MoveSummary(postgres ? PostgresSource : SqliteSource, archive.Parts);
    }

    /// <summary>
    /// How the access log's hash chains map: SQLite keeps one chain, PostgreSQL one per node, and a record's node is
    /// part of its digest, so records cannot change chains without breaking them. SQLite's chain becomes the
    /// PostgreSQL chain of the node named in its records (on PostgreSQL the chain's key is the node); a PostgreSQL
    /// log of one node becomes SQLite's chain. Anything else (a SQLite chain naming several nodes, several PostgreSQL
    /// chains into SQLite) is refused before anything is written. The chain's name for PostgreSQL, or null.
    /// </summary>
    private static string? ImportedChain(CityArchive archive, bool postgres, IConfiguration configuration)
    {
        var source = archive.Manifest["source"]?.GetValue<string>();
        var nodes = (archive.Manifest["accessLogNodes"] as JsonArray ?? []).Select(n => n!.GetValue<string>()).ToList();
        if (nodes.Count <= 1 || (postgres && source == PostgresSource) || (!postgres && source == SqliteSource))
        {
            return postgres && source == SqliteSource
                ? nodes.SingleOrDefault() ?? (configuration["Broker:NodeName"] is { Length: > 0 } node ? node : Environment.MachineName)
                : null;
        }

        throw new MoveException(postgres
            ? $"the archive's access log is one hash chain whose records name several nodes ({string.Join(", ", nodes)}); PostgreSQL keeps one chain per node name, so it cannot be moved without breaking the chain"
            : $"the archive's access log has one hash chain per node ({string.Join(", ", nodes)}); SQLite keeps one chain, so several cannot be moved into it without breaking them");
    }

    private static async Task ImportSqliteAsync(CityArchive archive, string data, IReadOnlyList<TrustTable> trustTables, CancellationToken cancellationToken)
    {
        await using var store = new SqliteEntityStore(Path.Combine(data, "machi.db"), NullLogger<SqliteEntityStore>.Instance);
        await store.InitializeAsync(cancellationToken).ConfigureAwait(false);
        await using var log = new SqliteAccessLog(Path.Combine(data, "access-log.db"));
        bool logged;
        await using (var logTable = log.OpenTable())
        {
            logged = Exists(logTable, null, "access_log") || log.JournalEntries().Count > 0;
        }

        await store.ImportAsync((c, tx) =>
        {
            // Checked in the import's own transaction: nothing can come in between.
            Refuse(Occupied(c, tx, trustTables, logged), $"the data directory {data}");
            foreach (var table in BrokerTables)
            {
                if (table.Seeded)
                {
                    SqliteEntityStore.Execute(c, $"DELETE FROM {table.Name}", tx);
                }

                TableCopy.Import(c, tx, table.Name, archive.Read(table.Name), TableCopy.Columns(c, tx, table.Name),
                    table.SqliteLacks is { } lacks ? new HashSet<string>(StringComparer.Ordinal) { lacks } : null);
            }

            foreach (var table in trustTables)
            {
                TableCopy.Import(c, tx, table.Name, archive.Read(table.Name), TableCopy.Columns(c, tx, table.Name, table.Dates));
            }

            // The change log goes on after the last change any consumer has seen, even when it was pruned empty.
            SqliteEntityStore.Execute(c, """
                INSERT INTO sqlite_sequence (name, seq) SELECT 'entity_changes', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'entity_changes');
                UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(seq) FROM change_cursors), 0)) WHERE name = 'entity_changes';
                """, tx);
        }, cancellationToken).ConfigureAwait(false);

        var keys = Directory.CreateDirectory(TrustDatabase.DataProtectionKeyDirectory(data));
        foreach (var key in archive.Read(DataProtectionPart))
        {
            var name = key["FriendlyName"]?.GetValue<string>() ?? "";
            if (!CityArchive.IsPlainName(name))
            {
                throw new MoveException($"part '{DataProtectionPart}' names a key '{name}' that is not a file name");
            }

            await File.WriteAllTextAsync(Path.Combine(keys.FullName, name + ".xml"), key["Xml"]?.GetValue<string>(), cancellationToken).ConfigureAwait(false);
        }

        await using var logConnection = log.OpenTable();
        await using var logTx = logConnection.BeginTransaction();
        SqliteAccessLog.Store(logConnection, logTx, archive.Read(AccessLogPart).Select(AccessLogRow));
        await logTx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A row of the archive's access log (either database's columns) as a stored entry and its time.</summary>
    private static (long At, AccessLogEntry Entry) AccessLogRow(JsonObject row)
    {
        string? Text(string name) => row[name]?.GetValue<string>();
        var at = row["at"]!.GetValue<long>();
        var redacted = row["redacted"] is JsonValue flag && (flag.TryGetValue<bool>(out var b) ? b : flag.GetValue<long>() != 0);
        var record = redacted
            ? null
            : new AccessRecord(new DateTimeOffset(at, TimeSpan.Zero), Text("resident")!, Text("client_id"), Text("subject"), Text("purpose"),
                Text("emergency_reason"), Text("operation")!, Text("tenant")!, Text("entity_id")!, Text("attributes"), Text("node")!);
        return (at, new AccessLogEntry(row["seq"]!.GetValue<long>(), record, Text("digest")!, Text("hash")!));
    }

    private static async Task ImportPostgresAsync(CityArchive archive, string database, IReadOnlyList<TrustTable> trustTables, string? chain, CancellationToken cancellationToken)
    {
        await MigrateAsync(new PostgresEntityStore(database, NullLogger<PostgresEntityStore>.Instance), cancellationToken).ConfigureAwait(false);
        await using var dataSource = NpgsqlDataSource.Create(database);
        await using var c = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        Refuse(Occupied(c, tx, trustTables, Exists(c, tx, "access_log")), "the database");
        foreach (var table in BrokerTables.Where(t => t.Seeded))
        {
            await ExecuteAsync(c, tx, $"DELETE FROM {table.Name}", cancellationToken).ConfigureAwait(false);
        }

        var tables = BrokerTables.Select(t => t.Name).Concat(trustTables.Select(t => t.Name)).Append(DataProtectionPart).ToList();
        foreach (var table in tables)
        {
            await TableCopy.ImportAsync(c, table, archive.Read(table), await TableCopy.ColumnsAsync(c, tx, table, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }

        // SQLite clears the node of a redacted record; on PostgreSQL the node is the key of the record's chain.
        var records = archive.Read(AccessLogPart).Select(r =>
        {
            if (r["node"] is null)
            {
                r["node"] = chain;
            }

            return r;
        });
        await TableCopy.ImportAsync(c, "access_log", records, await TableCopy.ColumnsAsync(c, tx, "access_log", cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

        foreach (var table in tables)
        {
            await AdvanceSequencesAsync(c, tx, table, cancellationToken).ConfigureAwait(false);
        }

        // The change log goes on after the last change any consumer has seen, even when it was pruned empty.
        await ExecuteAsync(c, tx, """
            SELECT setval('entity_change_seq', m) FROM (SELECT greatest((SELECT max(seq) FROM change_cursors), (SELECT max(seq) FROM entity_changes)) AS m) x WHERE m > 0
            """, cancellationToken).ConfigureAwait(false);
        await PostgresEntityStore.IndexAllAsync(c, tx, cancellationToken).ConfigureAwait(false);

        // Statistics of the loaded tables before the first query plans with them (autovacuum takes them a while later).
        await ExecuteAsync(c, tx, $"ANALYZE {PostgresEntityStore.PlannedTables}", cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExportTablesAsync(CityArchive.Writer archive, DbConnection c, DbTransaction tx, bool sqlite, IReadOnlyList<TrustTable> trustTables, CancellationToken cancellationToken)
    {
        foreach (var table in BrokerTables)
        {
            await archive.PartAsync(table.Name, part => TableCopy.ExportAsync(c, tx, table.Select(sqlite), part, cancellationToken)).ConfigureAwait(false);
        }

        foreach (var table in trustTables)
        {
            await archive.PartAsync(table.Name, part => TableCopy.ExportAsync(c, tx, $"SELECT * FROM \"{table.Name}\"", part, cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <summary>Runs the store's migrations (and, on PostgreSQL, makes the history partitions), then closes it.</summary>
    private static async Task MigrateAsync(IEntityStore store, CancellationToken cancellationToken)
    {
        await using (store.ConfigureAwait(false))
        {
            await store.InitializeAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static IReadOnlyList<TrustTable> TrustTablesOf(IServiceProvider trust)
    {
        using var scope = trust.CreateScope();
        return TrustTables.InOrder(scope.ServiceProvider.GetRequiredService<TrustDbContext>().Model);
    }

    /// <summary>A record of the SQLite log as a row of the archive's access log (a redacted one keeps only seq, time, digest and hash).</summary>
    private static void WriteAccessLogRow(System.Text.Json.Utf8JsonWriter json, long at, AccessLogEntry entry)
    {
        var record = entry.Record;
        TableCopy.Write(json, "seq", entry.Seq);
        TableCopy.Write(json, "at", at);
        TableCopy.Write(json, "resident", record?.Resident);
        TableCopy.Write(json, "client_id", record?.ClientId);
        TableCopy.Write(json, "subject", record?.Subject);
        TableCopy.Write(json, "purpose", record?.Purpose);
        TableCopy.Write(json, "emergency_reason", record?.EmergencyReason);
        TableCopy.Write(json, "operation", record?.Operation);
        TableCopy.Write(json, "tenant", record?.Tenant);
        TableCopy.Write(json, "entity_id", record?.EntityId);
        TableCopy.Write(json, "attributes", record?.Attributes);
        TableCopy.Write(json, "node", record?.Node);
        TableCopy.Write(json, "redacted", record is null ? 1L : 0L);
        TableCopy.Write(json, "digest", entry.Digest);
        TableCopy.Write(json, "hash", entry.Hash);
    }

    private static async Task<List<string>> NodesAsync(DbConnection c, DbTransaction tx, CancellationToken cancellationToken)
    {
        await using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT DISTINCT node FROM access_log WHERE node IS NOT NULL ORDER BY node";
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var nodes = new List<string>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            nodes.Add(r.GetString(0));
        }

        return nodes;
    }

    /// <summary>The tables (and the access log) of the target that hold rows already.</summary>
    private static List<string> Occupied(DbConnection c, DbTransaction tx, IReadOnlyList<TrustTable> trustTables, bool logged)
    {
        var occupied = Occupying(trustTables).Where(table => Exists(c, tx, table)).ToList();
        if (logged)
        {
            occupied.Add("access log");
        }

        return occupied;
    }

    private static bool Exists(DbConnection c, DbTransaction? tx, string table)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"SELECT 1 FROM \"{table}\" LIMIT 1";
        return cmd.ExecuteScalar() is not null;
    }

    private static void Refuse(List<string> occupied, string target)
    {
        if (occupied.Count > 0)
        {
            throw new MoveException($"{target} already holds data ({string.Join(", ", occupied)}): import only into an empty target, nothing was written");
        }
    }

    /// <summary>Moves each sequence that numbers a column of the table (identity or nextval default) past the imported rows.</summary>
    private static async Task AdvanceSequencesAsync(NpgsqlConnection c, NpgsqlTransaction tx, string table, CancellationToken cancellationToken)
    {
        var sequences = new List<(string Column, string Sequence)>();
        await using (var find = new NpgsqlCommand("""
            SELECT column_name, coalesce(pg_get_serial_sequence(quote_ident(table_name), column_name), substring(column_default from 'nextval\(''([^'']+)''')) AS sequence
            FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = $1 AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')
            """, c, tx))
        {
            find.Parameters.Add(new NpgsqlParameter { Value = table });
            await using var r = await find.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                sequences.Add((r.GetString(0), r.GetString(1)));
            }
        }

        foreach (var (column, sequence) in sequences)
        {
            await using var advance = new NpgsqlCommand($"SELECT setval($1::regclass, m) FROM (SELECT max(\"{column}\") AS m FROM \"{table}\") x WHERE m IS NOT NULL", c, tx);
            advance.Parameters.Add(new NpgsqlParameter { Value = sequence });
            await advance.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection c, NpgsqlTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var cmd = new NpgsqlCommand(sql, c, tx);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
