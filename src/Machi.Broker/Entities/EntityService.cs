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

    public Task DeleteAsync(string tenant, string id, CancellationToken ct) =>
        WriteAsync(tenant, id, Delete(id), ct);

    public Task ReplaceAsync(string tenant, Entity replacement, CancellationToken ct) =>
        WriteAsync(tenant, replacement.Id, Replace(replacement), ct);

    public Task MergeAsync(string tenant, Entity patch, CancellationToken ct) =>
        WriteAsync(tenant, patch.Id, Merge(patch), ct);

    public Task<UpdateResult> AppendAsync(string tenant, string id, AttributeMap attributes, bool noOverwrite, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributesAsync(tenant, id, entity => EntityOperations.Append(entity, attributes, noOverwrite, now), ct);
    }

    public Task<UpdateResult> UpdateAsync(string tenant, string id, AttributeMap attributes, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributesAsync(tenant, id, entity => EntityOperations.Update(entity, attributes, now), ct);
    }

    public Task PatchAttributeAsync(string tenant, string id, string name, AttributeFragment fragment, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributeAsync(tenant, id, name, fragment.Instance.DatasetId, entity => EntityOperations.PatchAttribute(entity, name, fragment, now), ct);
    }

    public Task ReplaceAttributeAsync(string tenant, string id, string name, AttributeInstance replacement, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributeAsync(tenant, id, name, replacement.DatasetId, entity => EntityOperations.ReplaceAttribute(entity, name, replacement, now), ct);
    }

    public Task DeleteAttributeAsync(string tenant, string id, string name, string? datasetId, bool deleteAll, CancellationToken ct)
    {
        var now = Now();
        return ChangeAttributeAsync(tenant, id, name, datasetId, entity => EntityOperations.DeleteAttribute(entity, name, datasetId, deleteAll, now), ct);
    }

    /// <summary>Runs one mutation in an existing tenant.</summary>
    private async Task WriteAsync(string tenant, string id, EntityMutation mutate, CancellationToken ct)
    {
        await RequireTenantAsync(tenant, ct).ConfigureAwait(false);
        await store.WriteOneAsync(tenant, id, mutate, ct).ConfigureAwait(false);
    }

    /// <summary>An attribute-level change of an existing entity, stored only when something changed.</summary>
    private async Task<UpdateResult> ChangeAttributesAsync(string tenant, string id, Func<Entity, UpdateResult> change, CancellationToken ct)
    {
        UpdateResult? result = null;
        await WriteAsync(tenant, id, Existing(id, entity =>
        {
            result = change(entity);
            return result.Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None;
        }), ct).ConfigureAwait(false);
        return result!;
    }

    /// <summary>A change of one attribute instance of an existing entity; false from the change means it is missing.</summary>
    private Task ChangeAttributeAsync(string tenant, string id, string name, string? datasetId, Func<Entity, bool> change, CancellationToken ct) =>
        WriteAsync(tenant, id, Existing(id, entity => change(entity) ? Mutation.Put(entity) : throw MissingAttribute(id, name, datasetId)), ct);

    /// <summary>A mutation of an entity that must exist (ResourceNotFound otherwise).</summary>
    private static EntityMutation Existing(string id, Func<Entity, Mutation> change) => current => change(current ?? throw Missing(id));

    /// <summary>Runs a batch of mutations in one transaction; per item null or the failure.</summary>
    public Task<Exception?[]> BatchAsync(string tenant, IReadOnlyList<EntityWrite> writes, CancellationToken ct) =>
        store.WriteAsync(tenant, writes, ct);

    public static EntityMutation Create(Entity entity) => current =>
        current is null
            ? Mutation.Put(entity)
            : throw new NgsiException(NgsiErrorType.AlreadyExists, $"Entity '{entity.Id}' already exists.");

    public static EntityMutation Delete(string id) => Existing(id, _ => Mutation.Delete);

    public EntityMutation Replace(Entity replacement)
    {
        var now = Now();
        return Existing(replacement.Id, current => Mutation.Put(EntityOperations.Replace(current, replacement, now)));
    }

    /// <summary>Merge (5.6.17) of a parsed fragment: its types are added, its scope and attributes merged.</summary>
    public EntityMutation Merge(Entity patch)
    {
        var now = Now();
        return Existing(patch.Id, entity =>
        {
            EntityOperations.Merge(entity, patch.Types, patch.Scope, patch.Attributes, now);
            return Mutation.Put(entity);
        });
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
        return Existing(fragment.Id, entity =>
            EntityOperations.Append(entity, fragment.Attributes, noOverwrite, now).Updated.Count > 0 ? Mutation.Put(entity) : Mutation.None);
    }

    public static NgsiException Missing(string id) => NgsiException.NotFound($"Entity '{id}' does not exist.");

    private static NgsiException MissingAttribute(string id, string name, string? datasetId) =>
        NgsiException.NotFound(datasetId is null
            ? $"Entity '{id}' has no attribute '{name}'."
            : $"Entity '{id}' has no attribute '{name}' with datasetId '{datasetId}'.");
}
