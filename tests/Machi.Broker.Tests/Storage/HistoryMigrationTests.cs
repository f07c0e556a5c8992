using System.Text.Json;
using Machi.Broker.Storage;
using Machi.Broker.Temporal;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Storage;

/// <summary>
/// A database written by a broker that recorded history through a change-log consumer (schema 3) opens in the
/// writer-recorded layout with every instance, its instanceId, and the changes that consumer had not reached yet.
/// </summary>
public sealed class HistoryMigrationTests
{
    private static readonly string Speed = LdContext.Core.ExpandTerm("speed");

    [Fact]
    public async Task Old_history_rows_keep_their_instance_ids_and_unrecorded_changes_are_replayed()
    {
        var directory = TempDirectory.Create("machi-history-migration-");
        var path = Path.Combine(directory, "machi.db");
        try
        {
            var t0 = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
            var before = Vehicle(12, t0.AddMinutes(1));
            var after = Vehicle(13, t0.AddMinutes(2));
            await using (var old = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
            {
                old.Open();
                SqliteSchema.Migrate(old, upTo: 3);
                using var cmd = old.CreateCommand();
                cmd.CommandText = """
                    INSERT INTO temporal_entities VALUES ('', 'urn:ngsi-ld:Vehicle:old', '["https://uri.etsi.org/ngsi-ld/default-context/Vehicle"]', $t0, $t0, NULL);
                    INSERT INTO attribute_history (tenant, entity_id, attr, dataset_id, instance_id, kind, observed_at, created_at, modified_at, value, instance, deleted)
                    VALUES ('', 'urn:ngsi-ld:Vehicle:old', $speed, NULL, 'urn:ngsi-ld:attribute:instance:5-0', 0, NULL, $t0, $t0, '10', NULL, 0),
                           ('', 'urn:ngsi-ld:Vehicle:old', $speed, NULL, 'urn:ngsi-ld:attribute:instance:h3', 0, $t1, $t0, $t0, '11', NULL, 0);
                    INSERT INTO entity_changes (seq, tenant, entity_id, kind, before, after, at) VALUES (5, '', 'urn:ngsi-ld:Vehicle:old', 0, NULL, $before, $t0);
                    INSERT INTO entity_changes (seq, tenant, entity_id, kind, before, after, at) VALUES (6, '', 'urn:ngsi-ld:Vehicle:old', 1, $before, $after, $t2);
                    UPDATE change_cursors SET seq = 5 WHERE consumer = 'temporal';
                    """;
                cmd.Parameters.AddWithValue("$t0", t0.UtcTicks);
                cmd.Parameters.AddWithValue("$t1", t0.AddSeconds(30).UtcTicks);
                cmd.Parameters.AddWithValue("$t2", t0.AddMinutes(2).UtcTicks);
                cmd.Parameters.AddWithValue("$speed", Speed);
                cmd.Parameters.AddWithValue("$before", EntityCodec.Encode(before));
                cmd.Parameters.AddWithValue("$after", EntityCodec.Encode(after));
                cmd.ExecuteNonQuery();
            }

            await using var store = new SqliteEntityStore(path, NullLogger<SqliteEntityStore>.Instance);
            await store.InitializeAsync(CancellationToken.None);
            var history = new TemporalHistory(store);
            using (var reader = history.OpenReader())
            {
                var entity = reader.Entity("", "urn:ngsi-ld:Vehicle:old")!;
                var query = TemporalQuery.Parse(new Microsoft.AspNetCore.Http.QueryCollection());
                var rows = reader.History(entity, [Speed], query);

                // Oldest first: the recorded instance (t0), the appended one (observed t0+30 s), then the replayed update.
                Assert.Equal(["10", "11", "13"], rows.Select(r => r.Value));
                Assert.Equal("urn:ngsi-ld:attribute:instance:5-0", rows[0].InstanceId);
                Assert.Equal("urn:ngsi-ld:attribute:instance:h3", rows[1].InstanceId);
                Assert.Equal("urn:ngsi-ld:attribute:instance:6-0", rows[2].InstanceId);
                Assert.Equal(13, rows[2].ToInstance().Payload.GetValue<double>());
            }

            Assert.Equal(0L, store.Read(c => SqliteEntityStore.Scalar(c, "SELECT count(*) FROM change_cursors WHERE consumer = 'temporal'")));
            Assert.Equal(0L, store.Read(c => SqliteEntityStore.Scalar(c, "SELECT count(*) FROM sqlite_schema WHERE name IN ('attribute_history', 'temporal_entities')")));

            // Instances added through the temporal API go on numbering after the old ones.
            var added = new AttributeInstance(AttributeKind.Property, JsonSerializer.SerializeToNode(14)!);
            await history.AppendAsync("", "urn:ngsi-ld:Vehicle:old", null, [(Speed, added)], t0.AddMinutes(3), CancellationToken.None);
            using (var reader = history.OpenReader())
            {
                var entity = reader.Entity("", "urn:ngsi-ld:Vehicle:old")!;
                var rows = reader.History(entity, [Speed], TemporalQuery.Parse(new Microsoft.AspNetCore.Http.QueryCollection()));
                Assert.Equal("urn:ngsi-ld:attribute:instance:h4", rows[^1].InstanceId);
            }
        }
        finally
        {
            TempDirectory.Delete(directory);
        }
    }

    private static Entity Vehicle(double speed, DateTimeOffset at)
    {
        var entity = new Entity("urn:ngsi-ld:Vehicle:old", [LdContext.Core.ExpandTerm("Vehicle")]) { CreatedAt = at, ModifiedAt = at };
        entity.Attributes[Speed] = [new AttributeInstance(AttributeKind.Property, JsonSerializer.SerializeToNode(speed)!) { CreatedAt = at, ModifiedAt = at }];
        return entity;
    }
}
