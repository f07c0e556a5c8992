using Machi.Broker.Access;
using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Machi.Broker.Entities;
using Machi.Broker.Http;
using Machi.Broker.Query;
using Machi.Broker.Storage;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Stream;

/// <summary>
/// Live push to browsers (Machi extension): GET /ngsi-ld/v1/x-machi/stream sends the entity changes that match a
/// query as server-sent events. Filters, tenant, @context and representation are those of GET /entities. Events:
/// <list type="bullet">
/// <item><c>create</c>: an entity enters the view (it was created, or changed so that it now matches); data is the entity.</item>
/// <item><c>update</c>: an entity in the view changed and still matches; data is the entity.</item>
/// <item><c>delete</c>: an entity in the view was deleted; data is {"id","type"}.</item>
/// <item><c>leave</c>: an entity in the view changed so that it no longer matches; data is {"id","type"}. A client
/// treats it like delete.</item>
/// <item><c>reset</c>: the Last-Event-ID given is older than the change log keeps (or unknown); the client reloads
/// its state with a query, then keeps listening.</item>
/// <item><c>dropped</c>: the server closes the stream (the client fell too far behind, or shutdown); data has the
/// reason. The browser reconnects with Last-Event-ID and misses nothing still in the log.</item>
/// </list>
/// Every change event's id is the change's seq, so Last-Event-ID (or ?lastEventId=) resumes exactly after it.
/// </summary>
internal static class StreamApi
{
    public const string EventStream = "text/event-stream";

    public static RouteGroupBuilder MapStream(this RouteGroupBuilder api)
    {
        api.MapGet("/x-machi/stream", Open).WithTags("Live changes").WithNgsiHeaders().WithName("StreamEntityChanges")
            .WithSummary("Server-sent events of the entity changes matching a query (create, update, delete, leave, reset)")
            .WithDescription("Machi extension. Each matching change is an event whose id is the change's sequence number; "
                + "send Last-Event-ID (or lastEventId=) to resume after it. create/update carry the entity rendered like a query "
                + "result, delete/leave carry {\"id\",\"type\"} (leave: the entity changed and no longer matches). reset: the "
                + "given id is older than the change log keeps (Broker:ChangeRetention); reload with a query. A comment line is "
                + "sent every Broker:StreamHeartbeat while idle. Without any filter every change of the tenant is sent.")
            .WithQuery(
                ("type", "Type expression, as for GET /entities."),
                ("id", "Comma list of entity ids."),
                ("idPattern", "Regular expression the entity id must match."),
                NgsiOpenApi.Attrs,
                ("q", "Query language expression (clause 4.9)."),
                ("georel", "Geo-query relation."), ("geometry", "Geo-query geometry type."), ("coordinates", "Geo-query coordinates."),
                ("geoproperty", "The GeoProperty the geo-query applies to."),
                ("scopeQ", "Scope query."),
                ("pick", "Members to return."), ("omit", "Members to leave out."),
                ("lastEventId", "Resume after this event id (instead of the Last-Event-ID header)."),
                NgsiOpenApi.Options, NgsiOpenApi.Format, NgsiOpenApi.Lang)
            .Produces<string>(200, EventStream).ProducesProblem(400).ProducesProblem(404);
        return api;
    }

    private static async Task<IResult> Open(HttpContext http, EntityService entities, IContextResolver resolver)
    {
        var request = http.Request;
        AcceptEventStream(request);
        var options = RequestOptions.Parse(request.Query);
        QueryParameters.RejectUnsupported(request.Query, "csf", "join", "joinLevel", "entityMap", "containedBy", "datasetId", "local");
        var context = await NgsiRequest.ContextAsync(http, resolver);
        var (filter, pick, omit) = QueryParameters.FromUrl(request.Query, options, context.ExpandTerm);
        var render = options.Render(context, MediaTypes.Json) with { Pick = pick, Omit = omit };
        var tenant = NgsiRequest.Tenant(request);
        await entities.RequireTenantAsync(tenant, http.RequestAborted);
        var caller = http.Caller();
        return new EventStreamResult(tenant, filter, render, LastEventId(request), View(request, tenant, caller), caller);
    }

    /// <summary>
    /// What decides a stream's events: its tenant, query parameters (but the resume position) and @context. Streams
    /// with the same view share each change's rendered event.
    /// </summary>
    private static string View(HttpRequest request, string tenant, Caller caller)
    {
        // Who asks decides what they may see: anonymous streams share one view, others one per caller and purpose.
        var view = new StringBuilder(tenant).Append('\n');
        if (!caller.IsAnonymous)
        {
            view.Append(caller.ClientId).Append('\n').Append(caller.Subject).Append('\n').Append(caller.Purpose).Append('\n')
                .Append(caller.Has(Caller.ReadScope)).Append('\n').Append(AccessPolicy.IsEmergency(caller)).Append('\n');
        }

        foreach (var (key, values) in request.Query.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (key != "lastEventId")
            {
                view.Append(key).Append('=').Append(values.ToString()).Append('&');
            }
        }

        return view.Append('\n').Append(request.Headers.Link.ToString()).ToString();
    }

    private static void AcceptEventStream(HttpRequest request)
    {
        var accept = request.Headers.Accept.ToString();
        if (accept.Length == 0 || accept.Contains(EventStream, StringComparison.OrdinalIgnoreCase) || accept.Contains("*/*", StringComparison.Ordinal)
            || accept.Contains("text/*", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        throw new NgsiException(NgsiErrorType.NotAcceptable, "This resource is a stream of server-sent events: accept text/event-stream.");
    }

    private static long? LastEventId(HttpRequest request)
    {
        var text = request.Headers["Last-Event-ID"].ToString();
        if (text.Length == 0)
        {
            text = QueryParameters.Text(request.Query, "lastEventId") ?? string.Empty;
        }

        if (text.Length == 0)
        {
            return null;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seq)
            ? seq
            : throw NgsiException.BadData("Last-Event-ID must be an event id this stream sent (a whole number).");
    }

    /// <summary>Writes the stream: replay from the log after Last-Event-ID, then the live feed, until the client goes.</summary>
    private sealed class EventStreamResult(string tenant, EntityFilter filter, RenderOptions render, long? lastEventId, string view, Caller caller) : IResult
    {
        private const int RetryMilliseconds = 2000;
        private AccessPolicy? _access;
        private AccessAudit? _audit;

        public async Task ExecuteAsync(HttpContext http)
        {
            var services = http.RequestServices;
            var feed = services.GetRequiredService<ChangeFeed>();
            var store = services.GetRequiredService<IEntityStore>();
            var settings = services.GetRequiredService<IOptions<BrokerOptions>>().Value;
            _access = services.GetRequiredService<AccessPolicy>();
            _audit = services.GetRequiredService<AccessAudit>();
            var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
            var ct = stop.Token;

            var response = http.Response;
            response.StatusCode = 200;
            response.ContentType = EventStream;
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
            http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

            // A new stream shows what is committed after it opened. The feed may still be reading changes committed
            // before (on PostgreSQL it reads the log over the network, possibly another node's changes): skip those.
            var liveFrom = lastEventId is null ? store.LastChangeSeq : 0;
            var subscriber = feed.Subscribe();
            try
            {
                var buffer = new ArrayBufferWriter<byte>(4096);
                Line(buffer, $"retry: {RetryMilliseconds}");
                if (lastEventId is { } after)
                {
                    await ReplayAsync(buffer, store, after, subscriber.StartSeq, response, ct).ConfigureAwait(false);
                }

                await FlushAsync(response, buffer, ct).ConfigureAwait(false);
                await LiveAsync(buffer, subscriber, liveFrom, settings.StreamHeartbeat, response, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The client went away or the server is stopping.
            }
            catch (IOException)
            {
                // The connection broke while writing.
            }
            finally
            {
                feed.Unsubscribe(subscriber);
            }
        }

        /// <summary>Sends the changes after <paramref name="after"/> up to the feed's start from the log, or reset when they are gone.</summary>
        private async Task ReplayAsync(ArrayBufferWriter<byte> buffer, IEntityStore store, long after, long until, HttpResponse response, CancellationToken ct)
        {
            if (after > until)
            {
                Reset(buffer, until, "the given event id is not one this server has sent");
                return;
            }

            var position = after;
            while (position < until)
            {
                var changes = await store.ReadChangesAsync(position, 256, ct).ConfigureAwait(false);
                if (changes.Count == 0 || (position == after && changes[0].Seq != after + 1))
                {
                    // Seqs are consecutive: a gap right after the client's id means the changes it missed were pruned.
                    Reset(buffer, until, "the changes after the given event id are no longer kept");
                    return;
                }

                foreach (var change in changes)
                {
                    if (change.Seq > until)
                    {
                        break;
                    }

                    Write(buffer, change, change.BeforeEntity(), change.AfterEntity());
                    position = change.Seq;
                }

                if (buffer.WrittenCount > 32 * 1024)
                {
                    await FlushAsync(response, buffer, ct).ConfigureAwait(false);
                }
            }
        }

        private async Task LiveAsync(ArrayBufferWriter<byte> buffer, FeedSubscriber subscriber, long liveFrom, TimeSpan heartbeat, HttpResponse response, CancellationToken ct)
        {
            var reader = subscriber.Reader;
            while (true)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                idle.CancelAfter(heartbeat > TimeSpan.Zero ? heartbeat : TimeSpan.FromSeconds(15));
                bool open;
                try
                {
                    open = await reader.WaitToReadAsync(idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    Line(buffer, ": heartbeat");
                    await FlushAsync(response, buffer, ct).ConfigureAwait(false);
                    continue;
                }

                if (!open)
                {
                    Event(buffer, null, "dropped", w =>
                    {
                        w.WriteStartObject();
                        w.WriteString("reason", subscriber.DropReason ?? "closed");
                        w.WriteEndObject();
                    });
                    await FlushAsync(response, buffer, ct).ConfigureAwait(false);
                    return;
                }

                while (reader.TryRead(out var item))
                {
                    if (item.Change.Seq <= liveFrom)
                    {
                        continue;
                    }

                    // Written once per view and change; every client of the same view copies the same bytes.
                    var bytes = item.EventFor(view, shared =>
                    {
                        var own = new ArrayBufferWriter<byte>(1024);
                        Write(own, shared.Change, shared.Before, shared.After);
                        return own.WrittenSpan.ToArray();
                    });
                    buffer.Write(bytes);
                }

                await FlushAsync(response, buffer, ct).ConfigureAwait(false);
            }
        }

        /// <summary>The event (if any) a change makes in this client's view: see the class comment.</summary>
        private void Write(ArrayBufferWriter<byte> buffer, EntityChange change, Entity? before, Entity? after)
        {
            if (change.Tenant != tenant)
            {
                return;
            }

            var was = before is not null && filter.Matches(before) && _access!.CanRead(caller, EntityAccess.Of(before));
            var @is = after is not null && filter.Matches(after) && _access!.CanRead(caller, EntityAccess.Of(after));
            if (@is && AccessPolicy.IsThirdParty(caller, EntityAccess.Of(after)))
            {
                // Streamed personal data is logged as it is sent (the stream does not wait for the log).
                _ = _audit!.RecordAsync(caller, tenant, [after!], "stream");
            }

            var id = change.Seq.ToString(CultureInfo.InvariantCulture);
            if (@is)
            {
                Event(buffer, id, was ? "update" : "create", w => EntityRenderer.WriteEntity(w, after!, render));
            }
            else if (was)
            {
                Event(buffer, id, after is null ? "delete" : "leave", w =>
                {
                    w.WriteStartObject();
                    w.WriteString("id", before!.Id);
                    EntityRenderer.WriteTypes(w, "type", before.Types, render.Context);
                    w.WriteEndObject();
                });
            }
        }

        private static void Reset(ArrayBufferWriter<byte> buffer, long position, string reason) =>
            Event(buffer, position.ToString(CultureInfo.InvariantCulture), "reset", w =>
            {
                w.WriteStartObject();
                w.WriteString("reason", reason);
                w.WriteEndObject();
            });

        /// <summary>One event; the JSON is written on one line (the writer escapes line breaks inside strings).</summary>
        private static void Event(ArrayBufferWriter<byte> buffer, string? id, string name, Action<Utf8JsonWriter> data)
        {
            if (id is not null)
            {
                Append(buffer, "id: ");
                Append(buffer, id);
                Append(buffer, "\n");
            }

            Append(buffer, "event: ");
            Append(buffer, name);
            Append(buffer, "\ndata: ");
            using (var writer = new Utf8JsonWriter(buffer, EntityRenderer.WriterOptions))
            {
                data(writer);
            }

            Append(buffer, "\n\n");
        }

        /// <summary>A field or comment line that dispatches no event (retry:, ": heartbeat").</summary>
        private static void Line(ArrayBufferWriter<byte> buffer, string line)
        {
            Append(buffer, line);
            Append(buffer, "\n\n");
        }

        private static void Append(ArrayBufferWriter<byte> buffer, string text)
        {
            var span = buffer.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
            buffer.Advance(Encoding.UTF8.GetBytes(text, span));
        }

        private static async Task FlushAsync(HttpResponse response, ArrayBufferWriter<byte> buffer, CancellationToken ct)
        {
            if (buffer.WrittenCount > 0)
            {
                await response.Body.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
                buffer.Clear();
            }

            await response.Body.FlushAsync(ct).ConfigureAwait(false);
        }
    }
}
