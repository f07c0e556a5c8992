using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Broker.Entities;
using Machi.Broker.Access;
using Machi.Broker.Http;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Machi.Broker.Batch;

/// <summary>
/// Batch entity operations (clauses 5.6.7–5.6.10, 5.6.20; HTTP 6.14–6.17, 6.31). Each entity succeeds or fails on
/// its own; the whole batch is committed in one transaction, so its cost is one fsync however many entities.
/// </summary>
internal static class BatchApi
{
    public static RouteGroupBuilder MapBatch(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/entityOperations").WithTags("Batch operations").WithNgsiHeaders();
        group.MapPost("/create", Create).WithName("BatchCreate").WithSummary("Create entities").WithJsonBody("Array of entities.", array: true).AcceptsEntity().Produces(201).Produces(207);
        group.MapPost("/upsert", Upsert).WithName("BatchUpsert").WithSummary("Create or replace (options=update: append to) entities").WithJsonBody("Array of entities.", array: true).WithQuery(("options", "replace (default) or update.")).AcceptsEntity().Produces(201).Produces(204).Produces(207);
        group.MapPost("/update", Update).WithName("BatchUpdate").WithSummary("Append attributes to existing entities (options=noOverwrite)").WithJsonBody("Array of entity fragments with id.", array: true).WithQuery(("options", "noOverwrite: keep attributes that exist.")).AcceptsEntity().Produces(204).Produces(207);
        group.MapPost("/delete", Delete).WithName("BatchDelete").WithSummary("Delete entities by id").WithJsonBody("Array of entity ids.", array: true).Produces(204).Produces(207);
        group.MapPost("/merge", Merge).WithName("BatchMerge").WithSummary("Merge-patch entities").WithJsonBody("Array of entity fragments with id.", array: true).AcceptsEntity().Produces(204).Produces(207);
        return group;
    }

    private static async Task<IResult> Create(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var batch = await ReadEntitiesAsync(http, entities, resolver, requireType: true, prepare: true);
        await batch.RunAsync(entities, i => EntityWrite.Creating(i.Prepared!, EntityService.Create), http.Caller(), creates: true, http.RequestAborted);
        return batch.Result(successStatus: 201, listIds: batch.SucceededIds());
    }

    private static async Task<IResult> Upsert(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var options = RequestOptions.Parse(http.Request.Query);
        var batch = await ReadEntitiesAsync(http, entities, resolver, requireType: true, prepare: true);
        var created = new HashSet<string>(StringComparer.Ordinal);
        await batch.RunAsync(entities, i => EntityWrite.Creating(i.Prepared!, rows => entities.Upsert(rows, options.UpsertUpdate, () => created.Add(rows.Id))), http.Caller(), creates: true, http.RequestAborted);
        return created.Count > 0
            ? batch.Result(successStatus: 201, listIds: batch.SucceededIds().Where(created.Contains).ToList())
            : batch.Result(successStatus: 204, listIds: null);
    }

    private static async Task<IResult> Update(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var options = RequestOptions.Parse(http.Request.Query);
        var batch = await ReadEntitiesAsync(http, entities, resolver, requireType: false);
        await batch.RunAsync(entities, i => new EntityWrite(i.Id, entities.AppendTo(i.Entity!, options.NoOverwrite)), http.Caller(), creates: false, http.RequestAborted);
        return batch.Result(successStatus: 204, listIds: null);
    }

    private static async Task<IResult> Merge(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var batch = await ReadEntitiesAsync(http, entities, resolver, requireType: false, merge: true);
        await batch.RunAsync(entities, i => new EntityWrite(i.Id, entities.Merge(i.Entity!)), http.Caller(), creates: false, http.RequestAborted);
        return batch.Result(successStatus: 204, listIds: null);
    }

    private static async Task<IResult> Delete(HttpContext http, EntityService entities)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var (array, _) = await ReadArrayAsync(http, "entity ids");

        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var batch = new BatchRun(tenant);
        foreach (var item in array.EnumerateArray())
        {
            var id = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            if (NgsiText.IsUri(id))
            {
                batch.Items.Add(new BatchItem(id!));
            }
            else
            {
                batch.Items.Add(new BatchItem(item.GetRawText(), Failure: NgsiException.BadData("Every item must be an entity id (a URI).")));
            }
        }

        await batch.RunAsync(entities, i => new EntityWrite(i.Id, EntityService.Delete(i.Id)), http.Caller(), creates: false, http.RequestAborted);
        return batch.Result(successStatus: 204, listIds: null);
    }

    /// <summary>Parses the array of entities; an entity that does not parse fails alone.</summary>
    /// <param name="prepare">Prepare each entity for storing as a new one as soon as it is parsed (create, upsert), so the
    /// parsed entity is let go at once instead of living, with the whole batch's, until the batch is written.</param>
    private static async Task<BatchRun> ReadEntitiesAsync(HttpContext http, EntityService entities, IContextResolver resolver, bool requireType, bool merge = false, bool prepare = false)
    {
        var tenant = NgsiRequest.Tenant(http.Request);
        var (array, mediaType) = await ReadArrayAsync(http, "entities");

        if (!requireType)
        {
            await entities.RequireTenantAsync(tenant, http.RequestAborted);
        }

        var batch = new BatchRun(tenant);
        var now = entities.Now();
        foreach (var obj in array.EnumerateArray())
        {
            var id = obj.ValueKind == JsonValueKind.Object && (obj.TryGetProperty("id", out var idv) || obj.TryGetProperty("@id", out idv))
                && idv.ValueKind == JsonValueKind.String ? idv.GetString() ?? string.Empty : string.Empty;
            try
            {
                if (obj.ValueKind != JsonValueKind.Object)
                {
                    throw NgsiException.BadData("Every item must be an entity (a JSON object).");
                }

                var context = await NgsiRequest.BodyContextAsync(http, resolver, obj, mediaType);
                var entity = EntityParser.ParseEntity(obj, context, now, fragment: !requireType, allowNullMarker: merge);
                batch.Items.Add(prepare ? new BatchItem(entity.Id, Prepared: entities.Prepare(entity)) : new BatchItem(entity.Id, entity));
            }
            catch (NgsiException ex)
            {
                batch.Items.Add(new BatchItem(id, Failure: ex));
            }
        }

        return batch;
    }

    /// <summary>The body of a batch: a non-empty JSON array.</summary>
    private static async Task<(JsonElement Array, string MediaType)> ReadArrayAsync(HttpContext http, string items)
    {
        var (array, mediaType) = await NgsiRequest.ReadBodyAsync(http);
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw NgsiException.BadData($"The body must be a JSON array of {items}.");
        }

        return array.GetArrayLength() == 0 ? throw NgsiException.BadData("The batch is empty.") : (array, mediaType);
    }

    /// <summary>One item of a batch: its parsed entity or the entity prepared for storing (none for deletes) and, once known, why it failed.</summary>
    private sealed record BatchItem(string Id, Entity? Entity = null, NewEntityRows? Prepared = null, Exception? Failure = null)
    {
        public Exception? Failure { get; set; } = Failure;
    }

    private sealed class BatchRun(string tenant)
    {
        public List<BatchItem> Items { get; } = [];

        /// <summary>Writes every item that parsed, in one transaction, and records each one's outcome.</summary>
        public async Task RunAsync(EntityService entities, Func<BatchItem, EntityWrite> write, Caller caller, bool creates, CancellationToken ct)
        {
            var pending = Items.Where(i => i.Failure is null).ToList();
            if (pending.Count == 0)
            {
                return;
            }

            var touched = new List<(string, EntityAccess)>();
            var results = await entities.BatchAsync(tenant, pending.ConvertAll(i => entities.Guard(caller, write(i), creates, touched)), ct);
            await entities.LogWritesAsync(caller, tenant, touched);
            for (var i = 0; i < pending.Count; i++)
            {
                pending[i].Failure = results[i];
            }
        }

        public List<string> SucceededIds() => Items.Where(i => i.Failure is null).Select(i => i.Id).ToList();

        /// <summary>All succeeded: the success status (with the ids for 201); else 207 with BatchOperationResult.</summary>
        public IResult Result(int successStatus, List<string>? listIds)
        {
            if (Items.TrueForAll(i => i.Failure is null))
            {
                return successStatus == 204 || listIds is null
                    ? Results.NoContent()
                    : new NgsiJsonResult(successStatus, MediaTypes.Json, null, w => WriteIds(w, listIds));
            }

            return new NgsiJsonResult(207, MediaTypes.Json, null, w =>
            {
                w.WriteStartObject();
                w.WritePropertyName("success");
                WriteIds(w, SucceededIds());
                w.WriteStartArray("errors");
                foreach (var item in Items)
                {
                    if (item.Failure is null)
                    {
                        continue;
                    }

                    w.WriteStartObject();
                    w.WriteString("entityId", item.Id);
                    w.WritePropertyName("error");
                    ErrorHandling.WriteProblem(w, ErrorHandling.ToNgsi(item.Failure));
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            });
        }

        private static void WriteIds(Utf8JsonWriter w, List<string> ids)
        {
            w.WriteStartArray();
            foreach (var id in ids)
            {
                w.WriteStringValue(id);
            }

            w.WriteEndArray();
        }
    }
}
