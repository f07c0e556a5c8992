using System.Text.Json;
using Machi.Broker.Access;
using Machi.Broker.Entities;
using Machi.Broker.Storage;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;

namespace Machi.Broker;

/// <summary>
/// The broker for Machi services running in the same process: the same entity operations the HTTP API runs, with the
/// core @context, always on behalf of a <see cref="Caller"/> (a service's own client identity), so the rules that apply
/// to a remote caller can be applied here too.
/// </summary>
public sealed class LocalBroker
{
    private readonly EntityService _entities;

    internal LocalBroker(EntityService entities) => _entities = entities;

    /// <summary>
    /// Creates the entity, or appends its attributes to the existing one (batch upsert with <c>options=update</c>);
    /// the body is a normalized or concise NGSI-LD entity in the core @context. Returns once it is committed.
    /// </summary>
    /// <exception cref="Ngsi.Errors.NgsiException">The entity is not valid NGSI-LD.</exception>
    public async Task UpsertAsync(Caller caller, JsonElement entity, CancellationToken cancellationToken, string tenant = "")
    {
        ArgumentNullException.ThrowIfNull(caller);
        var parsed = EntityParser.ParseEntity(entity, LdContext.Core, _entities.Now());
        if (!caller.Has(Caller.WriteScope))
        {
            throw new Ngsi.Errors.NgsiException(Ngsi.Errors.NgsiErrorType.Forbidden, "This service may not write entities (no ngsi:write).");
        }

        var touched = new List<(string, EntityAccess)>();
        var write = _entities.Guard(caller, EntityWrite.Creating(parsed, rows => _entities.Upsert(rows, update: true, static () => { })), creates: true, touched);
        var results = await _entities.BatchAsync(tenant, [write], cancellationToken).ConfigureAwait(false);
        if (results[0] is { } error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        await _entities.LogWritesAsync(caller, tenant, touched).ConfigureAwait(false);
    }
}
