using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Broker.Entities;

/// <summary>
/// The entity operations of clause 5.6 over a store: each is a mutation run in the store's write transaction,
/// so checks ("does it exist?") and changes are atomic.
/// </summary>
internal sealed class EntityService(IEntityStore store, TimeProvider time)
{
    public DateTimeOffset Now() => time.GetUtcNow();

    public async Task RequireTenantAsync(string tenant, CancellationToken ct)
    {
        if (!await store.TenantExistsAsync(tenant, ct).ConfigureAwait(false))
        {
            throw new NgsiException(NgsiErrorType.NonexistentTenant, $"Tenant '{tenant}' does not exist.");
        }
    }

    public async Task<Entity> GetAsync(string tenant, string id, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        return await store.GetAsync(tenant, id, ct).ConfigureAwait(false) ?? throw Missing(id);
    }

    public async Task<EntityPage> QueryAsync(string tenant, EntityQuery query, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        return await store.QueryAsync(tenant, query, ct).ConfigureAwait(false);
    }

    public Task CreateAsync(string tenant, Entity entity, CancellationToken ct) =>
        store.WriteOneAsync(tenant, EntityWrite.Creating(entity, Create(entity)), ct);

    public async Task DeleteAsync(string tenant, string id, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        await store.WriteOneAsync(tenant, id, Delete(id), ct).ConfigureAwait(false);
    }

    public async Task ReplaceAsync(string tenant, Entity replacement, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        await store.WriteOneAsync(tenant, replacement.Id, Replace(replacement), ct).ConfigureAwait(false);
    }

    public async Task MergeAsync(string tenant, string id, List<string>? types, List<string>? scope, AttributeMap attributes, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        await store.WriteOneAsync(tenant, id, Merge(id, types, scope, attributes), ct).ConfigureAwait(false);
    }

    public async Task<UpdateResult> AppendAsync(string tenant, string id, AttributeMap attributes, bool noOverwrite, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        UpdateResult? result = null;
        var now = Now();
        await store.WriteOneAsync(tenant, id, current =>
        {
            var entity = current ?? throw Missing(id);
            result = EntityOperations.Append(entity, attributes, noOverwrite, now);
            return result.Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None;
        }, ct).ConfigureAwait(false);
        return result!;
    }

    public async Task<UpdateResult> UpdateAsync(string tenant, string id, AttributeMap attributes, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        UpdateResult? result = null;
        var now = Now();
        await store.WriteOneAsync(tenant, id, current =>
        {
            var entity = current ?? throw Missing(id);
            result = EntityOperations.Update(entity, attributes, now);
            return result.Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None;
        }, ct).ConfigureAwait(false);
        return result!;
    }

    public async Task PatchAttributeAsync(string tenant, string id, string name, AttributeFragment fragment, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        var now = Now();
        await store.WriteOneAsync(tenant, id, current =>
        {
            var entity = current ?? throw Missing(id);
            return EntityOperations.PatchAttribute(entity, name, fragment, now)
                ? Mutation.Put(entity)
                : throw MissingAttribute(id, name, fragment.Instance.DatasetId);
        }, ct).ConfigureAwait(false);
    }

    public async Task ReplaceAttributeAsync(string tenant, string id, string name, AttributeInstance replacement, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        var now = Now();
        await store.WriteOneAsync(tenant, id, current =>
        {
            var entity = current ?? throw Missing(id);
            return EntityOperations.ReplaceAttribute(entity, name, replacement, now)
                ? Mutation.Put(entity)
                : throw MissingAttribute(id, name, replacement.DatasetId);
        }, ct).ConfigureAwait(false);
    }

    public async Task DeleteAttributeAsync(string tenant, string id, string name, string? datasetId, bool deleteAll, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        var now = Now();
        await store.WriteOneAsync(tenant, id, current =>
        {
            var entity = current ?? throw Missing(id);
            return EntityOperations.DeleteAttribute(entity, name, datasetId, deleteAll, now)
                ? Mutation.Put(entity)
                : throw MissingAttribute(id, name, datasetId);
        }, ct).ConfigureAwait(false);
    }

    /// <summary>Runs a batch of mutations in one transaction; per item null or the failure.</summary>
    public Task<Exception?[]> BatchAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken ct) =>
        store.WriteAsync(tenant, writes, ct);

    public static EntityMutation Create(Entity entity) => current =>
        current is null
            ? Mutation.Put(entity)
            : throw new NgsiException(NgsiErrorType.AlreadyExists, $"Entity '{entity.Id}' already exists.");

    public static EntityMutation Delete(string id) => current =>
        current is null ? throw Missing(id) : Mutation.Delete;

    public EntityMutation Replace(Entity replacement)
    {
        var now = Now();
        return current => current is null
            ? throw Missing(replacement.Id)
            : Mutation.Put(EntityOperations.Replace(current, replacement, now));
    }

    public EntityMutation Merge(string id, List<string>? types, List<string>? scope, AttributeMap attributes)
    {
        var now = Now();
        return current =>
        {
            var entity = current ?? throw Missing(id);
            EntityOperations.Merge(entity, types, scope, attributes, now);
            return Mutation.Put(entity);
        };
    }

    /// <summary>Upsert (5.6.8): create, or replace (default) / append (options=update) when it exists.</summary>
    public EntityMutation Upsert(Entity entity, bool update, Action created)
    {
        var now = Now();
        return current =>
        {
            if (current is null)
            {
                created();
                return Mutation.Put(entity);
            }

            if (update)
            {
                EntityOperations.Append(current, entity.Attributes, noOverwrite: false, now);
                EntityOperations.Merge(current, entity.Types, entity.Scope, new AttributeMap(), now);
                return Mutation.Put(current);
            }

            return Mutation.Put(EntityOperations.Replace(current, entity, now));
        };
    }

    /// <summary>Batch update (5.6.9): append to existing entities, honouring noOverwrite.</summary>
    public EntityMutation AppendTo(Entity fragment, bool noOverwrite)
    {
        var now = Now();
        return current =>
        {
            var entity = current ?? throw Missing(fragment.Id);
            var result = EntityOperations.Append(entity, fragment.Attributes, noOverwrite, now);
            return result.Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None;
        };
    }

    public static NgsiException Missing(string id) => NgsiException.NotFound($"Entity '{id}' does not exist.");

    private static NgsiException MissingAttribute(string id, string name, string? datasetId) =>
        NgsiException.NotFound(datasetId is null
            ? $"Entity '{id}' has no attribute '{name}'."
            : $"Entity '{id}' has no attribute '{name}' with datasetId '{datasetId}'.");
}
