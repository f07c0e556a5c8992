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
    [Theory]
    [InlineData(null, SqliteEntityStore.PageSize)]
    [InlineData(4096, 4096)]
    public async Task A_database_has_the_page_size_it_was_made_with_and_keeps_every_entity_written_to_it(int? madeWith, long expected)
    {
        var directory = TempDirectory.Create("machi-page-");
        var path = Path.Combine(directory, "machi.db");
        try
        {
            if (madeWith is { } size)
            {
                // What a broker before 16 KB pages left: SQLite's default page size, fixed by switching to WAL.
                await using var old = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
                old.Open();
                SqliteEntityStore.Execute(old, $"PRAGMA page_size={size}; PRAGMA journal_mode=WAL;");
                SqliteSchema.Migrate(old);
            }

            await using (var store = await OpenAsync(path))
            {
                await WriteVehiclesAsync(store, 300);
            }

            await using var reopened = await OpenAsync(path);
            Assert.Equal(expected, reopened.Read(c => SqliteEntityStore.Scalar(c, "PRAGMA page_size")));
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
}
