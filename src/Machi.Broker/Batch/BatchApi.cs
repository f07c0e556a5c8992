using System.Runtime.ExceptionServices;
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
/// its own; the entities are written in runs as the body is parsed (<see cref="BatchRun"/>): a few transactions, flushed
/// to disk together with whatever other commits are ready.
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
        var batch = BatchRun.Of(http, entities, i => EntityWrite.Creating(i.Prepared!, EntityService.Create), creates: true);
        await ReadEntitiesAsync(http, entities, resolver, batch, requireType: true, prepare: true);
        await batch.CompleteAsync();
        return batch.Result(successStatus: 201, listIds: batch.SucceededIds());
    }

    private static async Task<IResult> Upsert(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var options = RequestOptions.Parse(http.Request.Query);
        var created = new HashSet<string>(StringComparer.Ordinal);
        var batch = BatchRun.Of(http, entities, i => EntityWrite.Creating(i.Prepared!, rows => entities.Upsert(rows, options.UpsertUpdate, () => created.Add(rows.Id))), creates: true);
        await ReadEntitiesAsync(http, entities, resolver, batch, requireType: true, prepare: true);
        await batch.CompleteAsync();
        return created.Count > 0
            ? batch.Result(successStatus: 201, listIds: batch.SucceededIds().Where(created.Contains).ToList())
            : batch.Result(successStatus: 204, listIds: null);
    }

    private static async Task<IResult> Update(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var options = RequestOptions.Parse(http.Request.Query);
        var batch = BatchRun.Of(http, entities, i => new EntityWrite(i.Id, entities.AppendTo(i.Entity!, options.NoOverwrite)), creates: false);
        await ReadEntitiesAsync(http, entities, resolver, batch, requireType: false);
        await batch.CompleteAsync();
        return batch.Result(successStatus: 204, listIds: null);
    }

    private static async Task<IResult> Merge(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var batch = BatchRun.Of(http, entities, i => new EntityWrite(i.Id, entities.Merge(i.Entity!)), creates: false);
        await ReadEntitiesAsync(http, entities, resolver, batch, requireType: false, merge: true);
        await batch.CompleteAsync();
        return batch.Result(successStatus: 204, listIds: null);
    }

    private static async Task<IResult> Delete(HttpContext http, EntityService entities)
    {
        var (array, _) = await ReadArrayAsync(http, "entity ids");
        var batch = BatchRun.Of(http, entities, i => new EntityWrite(i.Id, EntityService.Delete(i.Id)), creates: false);
        await entities.RequireTenantAsync(batch.Tenant, http.RequestAborted);
        foreach (var item in array.EnumerateArray())
        {
            var id = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            await batch.AddAsync(NgsiText.IsUri(id)
                ? new BatchItem(id!)
                : new BatchItem(item.GetRawText(), Failure: NgsiException.BadData("Every item must be an entity id (a URI).")));
        }

        await batch.CompleteAsync();
        return batch.Result(successStatus: 204, listIds: null);
    }

    /// <summary>Parses the array of entities into <paramref name="batch"/>, which writes them as they come (and holds the parse back while
    /// its earlier runs are not on disk); an entity that does not parse fails alone.</summary>
    /// <param name="prepare">Prepare each entity for storing as a new one as soon as it is parsed (create, upsert), so the
    /// parsed entity is let go at once.</param>
    private static async Task ReadEntitiesAsync(HttpContext http, EntityService entities, IContextResolver resolver, BatchRun batch, bool requireType, bool merge = false, bool prepare = false)
    {
        var (array, mediaType) = await ReadArrayAsync(http, "entities");
        if (!requireType)
        {
            await entities.RequireTenantAsync(batch.Tenant, http.RequestAborted);
        }

        var now = entities.Now();
        foreach (var obj in array.EnumerateArray())
        {
            try
            {
                if (obj.ValueKind != JsonValueKind.Object)
                {
                    throw NgsiException.BadData("Every item must be an entity (a JSON object).");
                }

                var context = await NgsiRequest.BodyContextAsync(http, resolver, obj, mediaType);
                var entity = EntityParser.ParseEntity(obj, context, now, fragment: !requireType, allowNullMarker: merge);
                await batch.AddAsync(prepare ? new BatchItem(entity.Id, Prepared: entities.Prepare(entity)) : new BatchItem(entity.Id, entity));
            }
            catch (NgsiException ex)
            {
                await batch.AddAsync(new BatchItem(ItemId(obj), Failure: ex));
            }
        }
    }

    /// <summary>The id a failed item is reported under: its id or @id when that is a string, else empty.</summary>
    private static string ItemId(JsonElement item) =>
        item.ValueKind == JsonValueKind.Object && (item.TryGetProperty("id", out var id) || item.TryGetProperty("@id", out id))
            && id.ValueKind == JsonValueKind.String ? id.GetString() ?? string.Empty : string.Empty;

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
        /// <summary>Let go once the item's write is made: the write holds the rows until the writer has stored them.</summary>
        public NewEntityRows? Prepared { get; set; } = Prepared;

        public Exception? Failure { get; set; } = Failure;
    }

    /// <summary>
    /// A batch's items and their outcomes. Items that parsed are handed to the store in runs of <see cref="RunLength"/>
    /// while the rest of the body is still being parsed, so the single writer starts on a batch's first entities at once
    /// and an entity's prepared rows are let go as soon as the writer has stored them, instead of all of them waiting
    /// in memory for the last one to be parsed and the whole batch to be on disk (the collector copied them into older
    /// generations: bench/README, session 23), and parsing stays at most <see cref="RunsAhead"/> runs ahead of the disk, so
    /// the parsed rows of many concurrent batches do not pile up in the writer's queue either (session 25). Each run is
    /// one write of the store and is on disk before the response; a batch is not one transaction (clause 5.6.7 makes
    /// every entity succeed or fail alone).
    /// </summary>
    private sealed class BatchRun(string tenant, EntityService entities, Caller caller, Func<BatchItem, EntityWrite> write, bool creates, CancellationToken ct)
    {
        /// <summary>Items a run holds (a 1,000-entity batch is eight writes of the store, committed by the writer as it reaches them).</summary>
        private const int RunLength = 128;

        /// <summary>Runs written and not yet on disk before parsing waits for the oldest (<see cref="WriteWindow"/>): two
        /// keep the writer busy with one while the next is parsed.</summary>
        private const int RunsAhead = 2;

        private readonly WriteWindow _window = new(RunsAhead);

        private List<BatchItem> _run = new(RunLength);
        private readonly List<(List<BatchItem> Items, Task<Exception?[]> Results)> _written = [];
        private readonly List<(string, EntityAccess)> _touched = [];

        public string Tenant => tenant;

        public List<BatchItem> Items { get; } = [];

        public static BatchRun Of(HttpContext http, EntityService entities, Func<BatchItem, EntityWrite> write, bool creates) =>
            new(NgsiRequest.Tenant(http.Request), entities, http.Caller(), write, creates, http.RequestAborted);

        /// <summary>Adds an item; one that parsed is written with the next run. Waits while <see cref="RunsAhead"/> runs are not on disk.</summary>
        public ValueTask AddAsync(BatchItem item)
        {
            Items.Add(item);
            if (item.Failure is null)
            {
                _run.Add(item);
                if (_run.Count == RunLength)
                {
                    WriteRun();
                }
            }

            return _window.MakeRoomAsync();
        }

        /// <summary>Writes the last run, waits for every run and records each item's outcome.</summary>
        public async Task CompleteAsync()
        {
            WriteRun();
            Exception? failed = null;
            var kept = false;
            foreach (var (items, written) in _written)
            {
                try
                {
                    var results = await written;
                    for (var i = 0; i < items.Count; i++)
                    {
                        items[i].Failure = results[i];
                    }

                    kept = true;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The store could not commit this run (disk full, I/O error): none of its items was kept.
                    failed ??= ex;
                    items.ForEach(i => i.Failure = ex);
                }
            }

            await entities.LogWritesAsync(caller, tenant, _touched);

            // Nothing kept: the request fails as a whole; else the result says which items were kept.
            if (failed is not null && !kept)
            {
                ExceptionDispatchInfo.Throw(failed);
            }
        }

        private void WriteRun()
        {
            if (_run.Count == 0)
            {
                return;
            }

            var items = _run;
            _run = new(RunLength);
            var writes = items.ConvertAll(i => entities.Guard(caller, write(i), creates, _touched));
            foreach (var item in items)
            {
                item.Prepared = null;
            }

            var results = entities.BatchAsync(tenant, writes, ct);
            _written.Add((items, results));
            _window.Add(results);
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
