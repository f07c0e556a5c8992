using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Broker.Tests.Infrastructure;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace Machi.Broker.Tests.Storage;

/// <summary>The change log records every committed change in the change's own transaction, in order, durably.</summary>
public sealed class ChangeLogTests : IAsyncLifetime
{
    private readonly string _directory = TempDirectory.Create("machi-changes-");
    private SqliteEntityStore _store = null!;

    private string Path => System.IO.Path.Combine(_directory, "machi.db");

    public async Task InitializeAsync()
    {
        _store = new SqliteEntityStore(Path, NullLogger<SqliteEntityStore>.Instance);
        await _store.InitializeAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        TempDirectory.Delete(_directory);
    }

    [Fact]
    public async Task Creates_updates_and_deletes_are_logged_in_commit_order_with_both_states_and_survive_a_restart()
    {
        var waiting = _store.WaitForChangeAsync(_store.LastChangeSeq, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        var first = Vehicle("urn:ngsi-ld:Vehicle:a", 10);
        await _store.WriteOneAsync("", EntityWrite.Creating(first, EntityService.Create(first)), CancellationToken.None);
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));

        var faster = Vehicle("urn:ngsi-ld:Vehicle:a", 20);
        await _store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:a", _ => Mutation.Put(faster), CancellationToken.None);
        await _store.WriteOneAsync("city-b", EntityWrite.Creating(Vehicle("urn:ngsi-ld:Vehicle:b", 5), EntityService.Create(Vehicle("urn:ngsi-ld:Vehicle:b", 5))), CancellationToken.None);
        await _store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:a", _ => Mutation.Delete, CancellationToken.None);

        // A mutation that fails leaves nothing in the log.
        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.WriteOneAsync("", "urn:ngsi-ld:Vehicle:z", _ => throw new InvalidOperationException(), CancellationToken.None));

        await _store.DisposeAsync();
        _store = new SqliteEntityStore(Path, NullLogger<SqliteEntityStore>.Instance);
        await _store.InitializeAsync(CancellationToken.None);

        var changes = await _store.ReadChangesAsync(0, 100, CancellationToken.None);
        Assert.Equal([ChangeKind.Created, ChangeKind.Updated, ChangeKind.Created, ChangeKind.Deleted], changes.Select(c => c.Kind));
        Assert.Equal(["", "", "city-b", ""], changes.Select(c => c.Tenant));
        Assert.True(changes.Zip(changes.Skip(1)).All(p => p.First.Seq < p.Second.Seq));
        Assert.Equal(changes[^1].Seq, _store.LastChangeSeq);
        Assert.Null(changes[0].BeforeEntity());
        Assert.Equal(10, Speed(changes[1].BeforeEntity()!));
        Assert.Equal(20, Speed(changes[1].AfterEntity()!));
        Assert.Equal(20, Speed(changes[3].BeforeEntity()!));
        Assert.Null(changes[3].After);

        Assert.Equal(changes.Skip(2).Select(c => c.Seq), (await _store.ReadChangesAsync(changes[1].Seq, 100, CancellationToken.None)).Select(c => c.Seq));
        await _store.PruneChangesAsync(changes[1].Seq, CancellationToken.None);
        Assert.Equal(changes.Skip(2).Select(c => c.Seq), (await _store.ReadChangesAsync(0, 100, CancellationToken.None)).Select(c => c.Seq));
    }

    private static double Speed(Entity entity) => entity.Attributes[LdContext.Core.ExpandTerm("speed")][0].Payload.GetValue<double>();

    private static Entity Vehicle(string id, double speed) => EntityParser.ParseEntity(
        JsonDocument.Parse(NgsiHttp.Vehicle(id, speed)).RootElement, LdContext.Core, DateTimeOffset.UtcNow);
}
