using Machi.Broker.Access;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.JsonLd;
using Microsoft.Extensions.Logging;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// Subscriptions (clause 5.8): create, read, update, delete, list; and, for the dispatcher, every subscription of
/// every tenant held in memory (read on every committed change, written rarely).
/// </summary>
/// <remarks>The cache is per process: with several nodes on one database, a node that changes a subscription
/// announces it (PostgreSQL NOTIFY) and every node reads the subscriptions again; a lookup that misses reads them again
/// at once, so a subscription made through another node is found however recent.</remarks>
internal sealed class SubscriptionService : IDisposable
{
    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Members that carry names or expressions read with the subscription's @context.</summary>
    private static readonly string[] ContextBoundMembers = ["entities", "watchedAttributes", "q", "geoQ", "notification"];

    private readonly ISubscriptionStore store;
    private readonly IContextResolver resolver;
    private readonly TimeProvider time;
    private readonly ILogger<SubscriptionService> logger;
    private readonly SemaphoreSlim _loadGate = new(1, 1);
    private ConcurrentDictionary<(string Tenant, string Id), Subscription> _all = new();
    private volatile bool _loaded;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SubscriptionService(ISubscriptionStore store, IContextResolver resolver, TimeProvider time, ILogger<SubscriptionService> logger)
    {
        this.store = store;
        this.resolver = resolver;
        this.time = time;
        this.logger = logger;
        store.ChangedElsewhere += OnChangedElsewhere;
    }

    public ISubscriptionStore Store => store;

    public DateTimeOffset Now() => time.GetUtcNow();

    /// <summary>Completes when a subscription is created, changed or deleted after this call.</summary>
    public Task Changed => Volatile.Read(ref _changed).Task;

    public async Task<Subscription> CreateAsync(string tenant, JsonObject document, LdContext context, string contextUrl, Caller owner, CancellationToken ct)
    {
        await EnsureLoadedAsync(ct).ConfigureAwait(false);
        if (document["id"] is null)
        {
            var withId = new JsonObject { ["id"] = SubscriptionParser.IdPrefix + Guid.NewGuid().ToString("N") };
            foreach (var (name, value) in document)
            {
                withId[name] = value?.DeepClone();
            }

            document = withId;
        }

        var now = Now();
        var subscription = SubscriptionParser.Build(tenant, document, context, contextUrl, now, now);
        subscription.Owner = owner with { EmergencyReason = null };
        if (subscription.IsExpired(now))
        {
            throw NgsiException.BadData("expiresAt must be in the future.");
        }

        if (!await store.AddAsync(Stored(subscription, DeliveryCounters.None), ct).ConfigureAwait(false))
        {
            throw new NgsiException(NgsiErrorType.AlreadyExists, $"Subscription '{subscription.Id}' already exists.");
        }

        _all[(tenant, subscription.Id)] = subscription;
        Signal();
        return subscription;
    }

    /// <summary>A subscription the caller may manage: its own client's, or any with <c>ngsi:admin</c>; others are missing.</summary>
    public async Task<Subscription> GetAsync(string tenant, string id, Caller caller, CancellationToken ct)
    {
        await EnsureLoadedAsync(ct).ConfigureAwait(false);
        if (!_all.TryGetValue((tenant, id), out var subscription))
        {
            // Made through another node a moment ago, perhaps: read them again before saying it does not exist.
            _loaded = false;
            await EnsureLoadedAsync(ct).ConfigureAwait(false);
            _all.TryGetValue((tenant, id), out subscription);
        }

        return subscription is not null && Manages(caller, subscription) ? subscription : throw Missing(id);
    }

    /// <summary>The subscriptions of a tenant the caller may manage, oldest first.</summary>
    public async Task<List<Subscription>> ListAsync(string tenant, Caller caller, CancellationToken ct)
    {
        await EnsureLoadedAsync(ct).ConfigureAwait(false);
        return [.. _all.Values.Where(s => s.Tenant == tenant && Manages(caller, s)).OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal)];
    }

    private static bool Manages(Caller caller, Subscription subscription) =>
        caller.Has(Caller.AdminScope) || (subscription.Owner?.ClientId is { } client && client == caller.ClientId);

    /// <summary>Every subscription of every tenant (for matching).</summary>
    public async Task<ICollection<Subscription>> AllAsync(CancellationToken ct)
    {
        await EnsureLoadedAsync(ct).ConfigureAwait(false);
        return _all.Values;
    }

    public Task<DeliveryCounters> CountersAsync(string tenant, string id, CancellationToken ct) => store.CountersAsync(tenant, id, ct);

    /// <summary>Update (5.8.2): the members of the fragment replace those of the subscription (notification is merged
    /// member by member), and the result must be a valid subscription.</summary>
    public async Task UpdateAsync(string tenant, string id, JsonObject fragment, LdContext context, Caller caller, CancellationToken ct)
    {
        var current = await GetAsync(tenant, id, caller, ct).ConfigureAwait(false);
        if (fragment["id"] is { } newId && newId.GetValue<string>() != id)
        {
            throw NgsiException.BadData("The id of a subscription cannot be changed.");
        }

        if (context.ValueJson != current.Context.ValueJson && ContextBoundMembers.Any(fragment.ContainsKey))
        {
            throw NgsiException.BadData("Members with attribute or type names (entities, watchedAttributes, q, geoQ, notification) must be updated with the @context the subscription was created with.");
        }

        var document = (JsonObject)current.Document.DeepClone();
        foreach (var (name, value) in fragment)
        {
            if (name == "notification" && document["notification"] is JsonObject notification && value is JsonObject changes)
            {
                foreach (var (member, memberValue) in changes)
                {
                    notification[member] = memberValue?.DeepClone();
                }
            }
            else
            {
                document[name] = value?.DeepClone();
            }
        }

        var now = Now();
        var updated = SubscriptionParser.Build(tenant, document, current.Context, current.ContextUrl, current.CreatedAt, now);
        updated.Owner = current.Owner;
        if (fragment.ContainsKey("expiresAt") && updated.IsExpired(now))
        {
            throw NgsiException.BadData("expiresAt must be in the future.");
        }

        if (!await store.ReplaceAsync(Stored(updated, DeliveryCounters.None), ct).ConfigureAwait(false))
        {
            throw Missing(id);
        }

        _all[(tenant, id)] = updated;
        Signal();
    }

    public async Task DeleteAsync(string tenant, string id, Caller caller, CancellationToken ct)
    {
        await GetAsync(tenant, id, caller, ct).ConfigureAwait(false);
        if (!await store.DeleteAsync(tenant, id, ct).ConfigureAwait(false))
        {
            throw Missing(id);
        }

        _all.TryRemove((tenant, id), out _);
        Signal();
    }

    public void Dispose()
    {
        store.ChangedElsewhere -= OnChangedElsewhere;
        _loadGate.Dispose();
    }

    private void OnChangedElsewhere()
    {
        _loaded = false;
        Signal();
    }

    private void Signal() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private async Task EnsureLoadedAsync(CancellationToken ct)
    {
        if (_loaded)
        {
            return;
        }

        await _loadGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_loaded)
            {
                return;
            }

            // Marked first: a change announced while reading makes the next call read again.
            _loaded = true;
            var all = new ConcurrentDictionary<(string Tenant, string Id), Subscription>();
            foreach (var stored in await store.ListAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    var wrapper = JsonNode.Parse(stored.Json)!.AsObject();
                    var context = await resolver.ResolveAsync(wrapper["context"]?.DeepClone(), ct).ConfigureAwait(false);
                    var subscription = SubscriptionParser.Build(
                        stored.Tenant, wrapper["doc"]!.AsObject(), context, wrapper["contextUrl"]!.GetValue<string>(), stored.CreatedAt, stored.ModifiedAt);
                    subscription.Owner = OwnerOf(wrapper["owner"]);
                    all[(stored.Tenant, stored.Id)] = subscription;
                }
                catch (NgsiException ex)
                {
                    logger.LogError(ex, "Subscription {Id} of tenant '{Tenant}' could not be loaded", stored.Id, stored.Tenant);
                }
            }

            _all = all;
        }
        catch
        {
            _loaded = false;
            throw;
        }
        finally
        {
            _loadGate.Release();
        }
    }

    /// <summary>The row for a subscription: its document with the @context it is read with.</summary>
    private static StoredSubscription Stored(Subscription s, DeliveryCounters counters)
    {
        var wrapper = new JsonObject
        {
            ["doc"] = s.Document.DeepClone(),
            ["context"] = s.Context.ValueJson is { } json ? JsonNode.Parse(json) : null,
            ["contextUrl"] = s.ContextUrl,
            ["owner"] = s.Owner is not { } o ? null : new JsonObject
            {
                ["subject"] = o.Subject,
                ["clientId"] = o.ClientId,
                ["purpose"] = o.Purpose,
                ["scopes"] = new JsonArray([.. o.Scopes.Order(StringComparer.Ordinal).Select(x => (JsonNode)x)]),
                ["roles"] = new JsonArray([.. o.Roles.Order(StringComparer.Ordinal).Select(x => (JsonNode)x)]),
            },
        };
        return new StoredSubscription(s.Tenant, s.Id, wrapper.ToJsonString(JsonOptions), s.CreatedAt, s.ModifiedAt, counters);
    }

    private static Caller? OwnerOf(JsonNode? node) => node is not JsonObject o
        ? null
        : new Caller(
            o["subject"]?.GetValue<string>(),
            o["clientId"]?.GetValue<string>(),
            new HashSet<string>(o["scopes"]?.AsArray().Select(x => x!.GetValue<string>()) ?? [], StringComparer.Ordinal),
            new HashSet<string>(o["roles"]?.AsArray().Select(x => x!.GetValue<string>()) ?? [], StringComparer.Ordinal))
        {
            Purpose = o["purpose"]?.GetValue<string>(),
        };

    private static NgsiException Missing(string id) => NgsiException.NotFound($"Subscription '{id}' does not exist.");
}
