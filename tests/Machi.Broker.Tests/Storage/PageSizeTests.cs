using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Storage;

/// <summary>
/// A database the broker creates has its page size (<see cref="SqliteEntityStore.PageSize"/>); a database made with
/// another one (every database before session 22 had 4 KB pages) keeps its own and works as before: entities written
/// to it, many pages' worth in one batch, are all there after the store is opened again.
/// </summary>
public sealed class PageSizeTests
{
    [Fact]
    public async Task A_new_database_gets_the_stores_page_size()
    {
        var directory = TempDirectory.Create("machi-page-");
        var path = Path.Combine(directory, "machi.db");
        try
        {
            await using (var store = await OpenAsync(path))
            {
                await WriteVehiclesAsync(store, 300);
            }

            Assert.Equal(SqliteEntityStore.PageSize, PageSizeOf(path));
            await using var reopened = await OpenAsync(path);
            Assert.Equal(300, await reopened.CountAsync(CancellationToken.None));
        }
        finally
        {
            TempDirectory.Delete(directory);
        }
    }

    [Fact]
    public async Task A_database_with_4_KB_pages_keeps_them_and_every_entity_written_to_it()
    {
        var directory = TempDirectory.Create("machi-page-");
        var path = Path.Combine(directory, "machi.db");
        try
        {
            // What a broker before 16 KB pages left: SQLite's default page size, fixed by switching to WAL.
            await using (var old = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
            {
                old.Open();
                SqliteEntityStore.Execute(old, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;");
                SqliteSchema.Migrate(old);
            }

            await using (var store = await OpenAsync(path))
            {
                await WriteVehiclesAsync(store, 300);
            }

            Assert.Equal(4096, PageSizeOf(path));
            await using var reopened = await OpenAsync(path);
            Assert.Equal(300, await reopened.CountAsync(CancellationToken.None));
            var last = await reopened.GetAsync("", "urn:ngsi-ld:Vehicle:page-299", CancellationToken.None);
            Assert.Equal(299, last!.Attributes[LdContext.Core.ExpandTerm("speed")][0].Payload.GetValue<double>());
        }
        finally
        {
            TempDirectory.Delete(directory);
        }
    }

    private static async Task<SqliteEntityStore> OpenAsync(string path)
    {
        var store = new SqliteEntityStore(path, NullLogger<SqliteEntityStore>.Instance);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    /// <summary>One batch of vehicles, each a few hundred bytes with a Japanese name: many pages of either size.</summary>
    private static async Task WriteVehiclesAsync(SqliteEntityStore store, int count)
    {
        var writes = Enumerable.Range(0, count).Select(i => EntityWrite.Creating(EntityParser.ParseEntity(JsonDocument.Parse($$$"""
            {"id":"urn:ngsi-ld:Vehicle:page-{{{i}}}","type":"Vehicle",
             "name":{"type":"Property","value":"会津若松市 除雪車 {{{i}}}号"},
             "speed":{"type":"Property","value":{{{i}}},"unitCode":"KMH","observedAt":"2026-11-29T08:00:00Z"},
             "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.93,37.49]}} }
            """).RootElement, LdContext.Core, DateTimeOffset.UtcNow), EntityService.Create)).ToList();
        var results = await store.WriteAsync("", writes, CancellationToken.None);
        Assert.All(results, Assert.Null);
    }

    private static long PageSizeOf(string path)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA page_size";
        return (long)cmd.ExecuteScalar()!;
    }
}
