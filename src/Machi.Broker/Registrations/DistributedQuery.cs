using System.Text.Json.Nodes;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Query;
using Machi.Ngsi.Model;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Registrations;

/// <summary>
/// Distributed query and retrieval (clause 4.3.6): the entity read endpoints hand their parsed request here; when
/// registrations match it, the request also goes to each registered context source (another NGSI-LD broker) and the
/// answers are merged with the broker's own data by the registration's mode. A source that fails or does not answer
/// in time leaves the answer partial, flagged with an NGSILD-Warning header (clause 6.3.17), never failed.
/// </summary>
/// <remarks>
/// Requests to a source carry local=true (it must not forward again), the source's tenant, the caller's @context
/// Link, a Via header naming this broker (clause 6.3.18), and options=sysAttrs in the normalized representation, so
/// that timestamps can decide conflicts and the caller's representation (keyValues, lang …) is produced here.
/// Query parameters this broker does not interpret (q, geo-query, scopeQ …) travel unchanged.
/// </remarks>
internal sealed class DistributedQuery(
    RegistrationService registrations,
    IHttpClientFactory clients,
    IOptions<FederationOptions> settings,
    ILogger<DistributedQuery> logger)
{
    public const string HttpClientName = "machi-federation";
    public const string WarningHeader = "NGSILD-Warning";

    /// <summary>Parameters answered here rather than passed on: the representation, paging, and the ones rewritten.</summary>
    private static readonly HashSet<string> NotForwarded = new(StringComparer.Ordinal)
    {
        "attrs", "options", "format", "lang", "limit", "offset", "count", "local", "geometryProperty",
        "join", "joinLevel", "containedBy", "entityMap", "datasetId",
    };

    private FederationOptions Options => settings.Value;

    /// <summary>Query Entities (5.7.2) over this broker and the matching context sources.</summary>
    /// <param name="local">Runs the query against this broker's store.</param>
    public async Task<EntityPage> QueryAsync(HttpContext http, string tenant, EntityQuery query, LdContext context,
        Func<EntityQuery, CancellationToken, Task<EntityPage>> local)
    {
        var ct = http.RequestAborted;
        if (!MayForward(http))
        {
            return await local(query, ct).ConfigureAwait(false);
        }

        var selection = Selection(query.Filter);
        var routes = await RoutesAsync(http, tenant, "queryEntity", selection).ConfigureAwait(false);
        if (routes.Count == 0)
        {
            return await local(query, ct).ConfigureAwait(false);
        }

        // Pages are cut after merging, so every source is asked for everything up to the end of the page.
        var wanted = query.Offset + query.Limit;
        var localTask = LocalOrNothingAsync(() => local(query with { Offset = 0, Limit = wanted }, ct));
        var remoteLimit = Math.Min(wanted, Options.MaxRemoteEntities);
        var warnings = new ConcurrentQueue<string>();
        var answers = await AskAllAsync(http, tenant, routes, r => ForwardUri(http, r, "entities", selection, query.Filter.Attrs, context,
            ("limit", remoteLimit.ToString(CultureInfo.InvariantCulture)), query.Count ? ("count", "true") : default), context, single: false, warnings).ConfigureAwait(false);
        var localPage = await localTask.ConfigureAwait(false);

        var exclusive = await ExclusiveAsync(tenant, "queryEntity", ct).ConfigureAwait(false);
        var (merged, duplicates, _) = Merge(localPage?.Entities ?? [], routes, answers, exclusive);
        AddWarnings(http, warnings);

        long? total = null;
        if (query.Count)
        {
            total = (localPage?.TotalCount ?? 0) + answers.Sum(a => a?.Total ?? a?.Entities.Count ?? 0) - duplicates;
        }

        return new EntityPage([.. merged.Skip(query.Offset).Take(query.Limit)], total);
    }

    /// <summary>
    /// The first <see cref="EntityQuery.Limit"/> entities of a query over this broker and the matching context sources,
    /// each with where it was found: "@none" for this broker, else the ids of the registrations whose sources answered
    /// it (what an entity map records, clause 5.2.35).
    /// </summary>
    public async Task<(IReadOnlyList<Entity> Entities, IReadOnlyDictionary<string, List<string>> Sources)> QueryWithSourcesAsync(
        HttpContext http, string tenant, EntityQuery query, LdContext context, Func<EntityQuery, CancellationToken, Task<EntityPage>> local)
    {
        var ct = http.RequestAborted;
        query = query with { Offset = 0, Count = false };
        var routes = MayForward(http) ? await RoutesAsync(http, tenant, "queryEntity", Selection(query.Filter)).ConfigureAwait(false) : [];
        if (routes.Count == 0)
        {
            var page = await local(query, ct).ConfigureAwait(false);
            return (page.Entities, page.Entities.ToDictionary(e => e.Id, _ => new List<string> { LocalSource }, StringComparer.Ordinal));
        }

        var selection = Selection(query.Filter);
        var localTask = LocalOrNothingAsync(() => local(query, ct));
        var remoteLimit = Math.Min(query.Limit, Options.MaxRemoteEntities).ToString(CultureInfo.InvariantCulture);
        var warnings = new ConcurrentQueue<string>();
        var answers = await AskAllAsync(http, tenant, routes, r => ForwardUri(http, r, "entities", selection, query.Filter.Attrs, context, ("limit", remoteLimit)),
            context, single: false, warnings).ConfigureAwait(false);
        var localPage = await localTask.ConfigureAwait(false);
        var exclusive = await ExclusiveAsync(tenant, "queryEntity", ct).ConfigureAwait(false);
        var (merged, _, sources) = Merge(localPage?.Entities ?? [], routes, answers, exclusive);
        AddWarnings(http, warnings);
        return ([.. merged.Take(query.Limit)], sources);
    }

    /// <summary>
    /// The entities with the given ids, here and at the context sources registered for them, in no particular order:
    /// what a page of an entity map and the Linked Entities of a join read. Sources are asked for exactly these ids
    /// (not the caller's query, which selected other entities).
    /// </summary>
    public async Task<IReadOnlyList<Entity>> QueryByIdsAsync(HttpContext http, string tenant, IReadOnlyList<string> ids, LdContext context,
        Func<EntityQuery, CancellationToken, Task<EntityPage>> local)
    {
        var ct = http.RequestAborted;
        var query = new EntityQuery(new EntityFilter { Selectors = [new EntitySelector(ids, null, null)] }) { Limit = ids.Count };
        var selection = new EntitySelection(ids, null, null, null);
        var routes = MayForward(http) ? await RoutesAsync(http, tenant, "queryEntity", selection).ConfigureAwait(false) : [];
        if (routes.Count == 0)
        {
            return (await local(query, ct).ConfigureAwait(false)).Entities;
        }

        var localTask = LocalOrNothingAsync(() => local(query, ct));
        var warnings = new ConcurrentQueue<string>();
        var answers = await AskAllAsync(http, tenant, routes, r => ForwardUri(null, r, "entities", selection, null, context,
            ("id", string.Join(',', ids)), ("limit", ids.Count.ToString(CultureInfo.InvariantCulture))), context, single: false, warnings).ConfigureAwait(false);
        var localPage = await localTask.ConfigureAwait(false);
        var exclusive = await ExclusiveAsync(tenant, "queryEntity", ct).ConfigureAwait(false);
        var (merged, _, _) = Merge(localPage?.Entities ?? [], routes, answers, exclusive);
        AddWarnings(http, warnings);
        return merged;
    }

    /// <summary>How an entity map names this broker among the sources of an entity.</summary>
    public const string LocalSource = "@none";

    /// <summary>
    /// What a query asks for, as registrations are matched: the ids, pattern and type names of its selectors (open
    /// when any selector leaves them open) and its attributes.
    /// </summary>
    private static EntitySelection Selection(EntityFilter filter)
    {
        var selectors = filter.Selectors ?? [];
        List<string>? ids = selectors.Count > 0 && selectors.All(s => s.Ids is not null) ? [.. selectors.SelectMany(s => s.Ids!)] : null;
        List<string>? types = selectors.Count > 0 && selectors.All(s => s.Type is not null) ? [.. selectors.SelectMany(s => s.Type!.Names).Distinct()] : null;
        var pattern = selectors.Count == 1 ? selectors[0].IdPattern : null;
        return new EntitySelection(ids, pattern, types, filter.Attrs);
    }

    /// <summary>Retrieve Entity (5.7.1) from this broker and the matching context sources.</summary>
    /// <param name="attrs">attrs= expanded, or null for all.</param>
    /// <param name="local">Reads the entity from this broker; may throw ResourceNotFound or NonexistentTenant.</param>
    public async Task<Entity> RetrieveAsync(HttpContext http, string tenant, string id, IReadOnlyList<string>? attrs, LdContext context,
        Func<CancellationToken, Task<Entity>> local)
    {
        var ct = http.RequestAborted;
        if (!MayForward(http))
        {
            return await local(ct).ConfigureAwait(false);
        }

        var selection = new EntitySelection([id], null, null, attrs);
        var routes = await RoutesAsync(http, tenant, "retrieveEntity", selection).ConfigureAwait(false);
        if (routes.Count == 0)
        {
            return await local(ct).ConfigureAwait(false);
        }

        var localTask = LocalOrNothingAsync(() => local(ct));
        var warnings = new ConcurrentQueue<string>();
        var answers = await AskAllAsync(http, tenant, routes, r => ForwardUri(http, r, "entities/" + EntitiesApi.PathSegment(id), selection, attrs, context),
            context, single: true, warnings).ConfigureAwait(false);
        var localEntity = await localTask.ConfigureAwait(false);
        var exclusive = await ExclusiveAsync(tenant, "retrieveEntity", ct).ConfigureAwait(false);
        var (merged, _, _) = Merge(localEntity is null ? [] : [localEntity], routes, answers, exclusive);
        AddWarnings(http, warnings);
        return merged.FirstOrDefault(e => e.Id == id) ?? throw EntityService.Missing(id);
    }

    /// <summary>False when the request must be answered from this broker alone: local=true, or this broker is
    /// already on its Via path (a loop through sources that do not honour local=true).</summary>
    private bool MayForward(HttpContext http)
    {
        if (RequestOptions.Flag(http.Request.Query, "local"))
        {
            return false;
        }

        foreach (var header in http.Request.Headers.Via)
        {
            foreach (var hop in (header ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = hop.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 2 && string.Equals(parts[1], Options.BrokerId, StringComparison.OrdinalIgnoreCase))
                {
                    return false;
                }
            }
        }

        return true;
    }

    private async Task<List<CSourceRegistration>> RoutesAsync(HttpContext http, string tenant, string operation, EntitySelection selection)
    {
        var routes = await registrations.RoutesAsync(tenant, operation, selection, http.RequestAborted).ConfigureAwait(false);
        var host = http.Request.Host;
        var port = host.Port ?? (http.Request.IsHttps ? 443 : 80);

        // A registration of this broker itself would only echo its own data back.
        return [.. routes.Where(r => !(string.Equals(r.Endpoint.Host, host.Host, StringComparison.OrdinalIgnoreCase) && r.Endpoint.Port == port))];
    }

    /// <summary>The exclusive registrations in force: the attributes they hold are never taken from this broker.</summary>
    private async Task<List<CSourceRegistration>> ExclusiveAsync(string tenant, string operation, CancellationToken ct)
    {
        var now = registrations.Now();
        return [.. (await registrations.ListAsync(tenant, ct).ConfigureAwait(false))
            .Where(r => r.Mode == RegistrationMode.Exclusive && r.Operations.Contains(operation) && !r.IsExpired(now))];
    }

    private static async Task<T?> LocalOrNothingAsync<T>(Func<Task<T>> read)
        where T : class
    {
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (NgsiException ex) when (ex.Type is NgsiErrorType.ResourceNotFound or NgsiErrorType.NonexistentTenant)
        {
            return null;
        }
    }

    /// <summary>Local entities first, in their order, then what only the sources have; returns how many source
    /// entities were merged into one already held.</summary>
    private static (List<Entity> Entities, int Duplicates, Dictionary<string, List<string>> Sources) Merge(IReadOnlyList<Entity> local, List<CSourceRegistration> routes,
        IReadOnlyList<RemoteAnswer?> answers, IReadOnlyList<CSourceRegistration> exclusive)
    {
        var merged = new OrderedDictionary<string, Entity>(StringComparer.Ordinal);
        var sources = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var entity in local)
        {
            sources[entity.Id] = [LocalSource];
            foreach (var registration in exclusive)
            {
                EntityMerge.Without(entity, RegistrationMatch.ExclusiveAttributes(registration, entity.Id, entity.Types));
            }

            merged[entity.Id] = entity;
        }

        var duplicates = 0;
        foreach (var auxiliary in new[] { false, true })
        {
            for (var i = 0; i < routes.Count; i++)
            {
                if (answers[i] is not { } answer || (routes[i].Mode == RegistrationMode.Auxiliary) != auxiliary)
                {
                    continue;
                }

                foreach (var entity in answer.Entities)
                {
                    if (!sources.TryGetValue(entity.Id, out var from))
                    {
                        sources[entity.Id] = from = [];
                    }

                    from.Add(routes[i].Id);
                    if (merged.TryGetValue(entity.Id, out var held))
                    {
                        EntityMerge.Into(held, entity, fillOnly: auxiliary);
                        duplicates++;
                    }
                    else
                    {
                        merged[entity.Id] = entity;
                    }
                }
            }
        }

        return ([.. merged.Values], duplicates, sources);
    }

    /// <summary>The URL of the forwarded request: the caller's uninterpreted parameters, attrs narrowed to what the
    /// registration covers, and local=true with the normalized, sysAttrs representation.</summary>
    /// <param name="http">The caller's request, whose query parameters travel on; null sends only <paramref name="extra"/>.</param>
    private static Uri ForwardUri(HttpContext? http, CSourceRegistration registration, string resource, EntitySelection selection,
        IReadOnlyList<string>? attrs, LdContext context, params (string Name, string Value)[] extra)
    {
        var url = new StringBuilder(registration.Endpoint.GetLeftPart(UriPartial.Path).TrimEnd('/')).Append("/ngsi-ld/v1/").Append(resource).Append('?');
        foreach (var (name, values) in http?.Request.Query ?? QueryCollection.Empty)
        {
            if (NotForwarded.Contains(name))
            {
                continue;
            }

            foreach (var value in values)
            {
                Append(url, name, value ?? string.Empty);
            }
        }

        var registered = RegistrationMatch.RegisteredAttributes(registration, selection);
        var names = registered is null ? attrs : attrs is null ? [.. registered] : [.. attrs.Where(registered.Contains)];
        if (names is not null)
        {
            Append(url, "attrs", string.Join(',', names.Select(context.CompactIri)));
        }

        Append(url, "local", "true");
        Append(url, "options", "sysAttrs");
        foreach (var (name, value) in extra)
        {
            if (name is not null)
            {
                Append(url, name, value);
            }
        }

        return new Uri(url.ToString(0, url.Length - 1));

        static void Append(StringBuilder url, string name, string value) =>
            url.Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value)).Append('&');
    }

    private async Task<RemoteAnswer?[]> AskAllAsync(HttpContext http, string tenant, List<CSourceRegistration> routes,
        Func<CSourceRegistration, Uri> uri, LdContext context, bool single, ConcurrentQueue<string> warnings)
    {
        var answers = new RemoteAnswer?[routes.Count];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Options.MaxConcurrency), CancellationToken = http.RequestAborted };
        await Parallel.ForEachAsync(Enumerable.Range(0, routes.Count), parallel, async (i, ct) =>
            answers[i] = await AskAsync(http, tenant, routes[i], uri(routes[i]), context, single, warnings, ct).ConfigureAwait(false)).ConfigureAwait(false);
        return answers;
    }

    private static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Accept", "Link", "Via", NgsiRequest.TenantHeader,
    };

    /// <summary>One request to one source; null (and a warning) when it gives nothing usable.</summary>
    private async Task<RemoteAnswer?> AskAsync(HttpContext http, string tenant, CSourceRegistration registration, Uri uri, LdContext context,
        bool single, ConcurrentQueue<string> warnings, CancellationToken ct)
    {
        var timeout = registration.Timeout ?? Options.DefaultTimeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Accept.ParseAdd(MediaTypes.Json);
        if (NgsiRequest.LinkContextUrl(http.Request) is { } contextUrl)
        {
            request.Headers.TryAddWithoutValidation("Link", JsonLdLink.Format(contextUrl));
        }

        if (registration.Tenant is { } remoteTenant)
        {
            request.Headers.TryAddWithoutValidation(NgsiRequest.TenantHeader, remoteTenant);
        }

        // contextSourceInfo travels as HTTP headers: how a registration carries the source's credentials (e.g. an
        // Authorization header with a token the other city issued to this one).
        if (registration.Document["contextSourceInfo"] is JsonArray info)
        {
            foreach (var item in info.OfType<JsonObject>())
            {
                if (item["key"]?.GetValue<string>() is { Length: > 0 } key && !ReservedHeaders.Contains(key))
                {
                    request.Headers.TryAddWithoutValidation(key, item["value"]?.GetValue<string>());
                }
            }
        }

        var via = http.Request.Headers.Via.ToString();
        request.Headers.TryAddWithoutValidation("Via", (via.Length > 0 ? via + ", " : string.Empty) + "1.1 " + Options.BrokerId);

        try
        {
            using var response = await clients.CreateClient(HttpClientName).SendAsync(request, deadline.Token).ConfigureAwait(false);
            if (single && response.StatusCode == HttpStatusCode.NotFound)
            {
                // The source does not have this entity: a normal answer, not a failure (6.3.17).
                registrations.Record(tenant, registration.Id, success: true);
                return null;
            }

            if (!response.IsSuccessStatusCode)
            {
                return Fail(299, $"answered {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            var body = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
            List<Entity> entities;
            try
            {
                entities = ReadEntities(body, context, single, registrations.Now());
            }
            catch (Exception ex) when (ex is JsonException or NgsiException)
            {
                return Fail(111, "answered with a payload that is not valid NGSI-LD: " + ex.Message);
            }

            long? total = response.Headers.TryGetValues("NGSILD-Results-Count", out var counts)
                && long.TryParse(counts.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
            registrations.Record(tenant, registration.Id, success: true);
            return new RemoteAnswer(entities, total);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return Fail(199, $"did not answer within {timeout.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms");
        }
        catch (HttpRequestException ex)
        {
            return Fail(199, "could not be reached: " + ex.Message);
        }

        RemoteAnswer? Fail(int code, string what)
        {
            registrations.Record(tenant, registration.Id, success: false);
            logger.LogWarning("Context source {Registration} at {Endpoint} {Problem}", registration.Id, registration.Endpoint, what);
            var text = $"Context source {registration.Id} {what}".Replace('"', '\'').Replace('\r', ' ').Replace('\n', ' ');
            warnings.Enqueue($"{code} {registration.Endpoint.Authority} \"{text}\"");
            return null;
        }
    }

    /// <summary>Reads a source's answer (an entity, or an array of them, normalized with sysAttrs) into the model.</summary>
    internal static List<Entity> ReadEntities(byte[] body, LdContext context, bool single, DateTimeOffset now)
    {
        using var document = JsonDocument.Parse(body);
        var root = document.RootElement;
        if (single)
        {
            return [ReadEntity(root, context, now)];
        }

        if (root.ValueKind != JsonValueKind.Array)
        {
            throw NgsiException.BadData("a query answer must be a JSON array of entities");
        }

        return [.. root.EnumerateArray().Select(e => ReadEntity(e, context, now))];
    }

    private static Entity ReadEntity(JsonElement json, LdContext context, DateTimeOffset now)
    {
        var entity = EntityParser.ParseEntity(json, context, now);

        // The parser treats system attributes as the broker's own; a source's are its data, and decide conflicts.
        entity.CreatedAt = Timestamp(json, "createdAt") ?? entity.CreatedAt;
        entity.ModifiedAt = Timestamp(json, "modifiedAt") ?? entity.ModifiedAt;
        foreach (var member in json.EnumerateObject())
        {
            if (member.Value.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array)
                || !entity.Attributes.TryGetValue(EntityParser.ExpandAttributeName(member.Name, context), out var instances))
            {
                continue;
            }

            var items = member.Value.ValueKind == JsonValueKind.Array ? member.Value.EnumerateArray().ToList() : [member.Value];
            foreach (var item in items.Where(i => i.ValueKind == JsonValueKind.Object))
            {
                var datasetId = item.TryGetProperty("datasetId", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
                if (instances.Find(i => i.DatasetId == datasetId) is { } instance)
                {
                    instance.CreatedAt = Timestamp(item, "createdAt") ?? instance.CreatedAt;
                    instance.ModifiedAt = Timestamp(item, "modifiedAt") ?? instance.ModifiedAt;
                }
            }
        }

        return entity;
    }

    private static DateTimeOffset? Timestamp(JsonElement json, string member) =>
        json.TryGetProperty(member, out var value) && value.ValueKind == JsonValueKind.String
        && NgsiText.CanonicalDateTime(value.GetString()!) is { } canonical ? RegistrationParser.Instant(canonical) : null;

    private static void AddWarnings(HttpContext http, ConcurrentQueue<string> warnings)
    {
        if (warnings.IsEmpty)
        {
            return;
        }

        // Added as the response starts, so that they survive an error answer (which clears the headers first).
        var values = warnings.ToArray();
        http.Response.OnStarting(() =>
        {
            foreach (var value in values)
            {
                http.Response.Headers.Append(WarningHeader, value);
            }

            return Task.CompletedTask;
        });
    }

    private sealed record RemoteAnswer(IReadOnlyList<Entity> Entities, long? Total);
}
