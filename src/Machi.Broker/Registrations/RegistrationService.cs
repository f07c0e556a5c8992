using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;

namespace Machi.Broker.Registrations;

/// <summary>
/// Context source registrations (clauses 5.9–5.10): create, read, update, delete, query; and, for distributed
/// operations, the registrations of a tenant (cached: read on every entity request, written rarely) and the health
/// of each source (status, counters, cooldown), which is kept in memory and starts afresh with the process.
/// </summary>
/// <remarks>The cache is per process: with several broker nodes on one database a registration made on another
/// node is seen here only after this node changes a registration of that tenant or restarts.</remarks>
internal sealed class RegistrationService(IRegistrationStore store, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, IReadOnlyList<CSourceRegistration>> _cache = Watched(store);
    private readonly ConcurrentDictionary<(string Tenant, string Id), RegistrationStatus> _status = new();

    public DateTimeOffset Now() => time.GetUtcNow();

    /// <summary>A cache of the registrations, emptied when another node changes them.</summary>
    private static ConcurrentDictionary<string, IReadOnlyList<CSourceRegistration>> Watched(IRegistrationStore store)
    {
        var cache = new ConcurrentDictionary<string, IReadOnlyList<CSourceRegistration>>(StringComparer.Ordinal);
        store.ChangedElsewhere += cache.Clear;
        return cache;
    }

    public async Task<CSourceRegistration> CreateAsync(string tenant, JsonObject document, CancellationToken ct)
    {
        var id = document["id"]?.GetValue<string>();
        if (id is null)
        {
            id = RegistrationParser.IdPrefix + Guid.NewGuid().ToString("N");
            var withId = new JsonObject { ["id"] = id };
            foreach (var (name, value) in document)
            {
                withId[name] = value?.DeepClone();
            }

            document = withId;
        }

        var now = Now();
        var registration = RegistrationParser.Build(document, now, now);
        if (registration.IsExpired(now))
        {
            throw NgsiException.BadData("expiresAt must be in the future.");
        }

        var existing = await ListAsync(tenant, ct).ConfigureAwait(false);
        CheckExclusiveConflicts(registration, existing);
        if (!await store.AddAsync(tenant, Stored(registration), ct).ConfigureAwait(false))
        {
            throw new NgsiException(NgsiErrorType.AlreadyExists, $"Registration '{id}' already exists.");
        }

        _cache.TryRemove(tenant, out _);
        return registration;
    }

    public async Task<CSourceRegistration> GetAsync(string tenant, string id, CancellationToken ct) =>
        (await ListAsync(tenant, ct).ConfigureAwait(false)).FirstOrDefault(r => r.Id == id) ?? throw Missing(id);

    /// <summary>Update (5.9.3): the members of the fragment replace those of the registration, which must stay valid.</summary>
    public async Task UpdateAsync(string tenant, string id, JsonObject fragment, CancellationToken ct)
    {
        var current = await GetAsync(tenant, id, ct).ConfigureAwait(false);
        if (fragment["id"] is { } newId && newId.GetValue<string>() != id)
        {
            throw NgsiException.BadData("The id of a registration cannot be changed.");
        }

        var document = (JsonObject)current.Document.DeepClone();
        foreach (var (name, value) in fragment)
        {
            document[name] = value?.DeepClone();
        }

        var now = Now();
        var updated = RegistrationParser.Build(document, current.CreatedAt, now);
        if (fragment.ContainsKey("expiresAt") && updated.IsExpired(now))
        {
            throw NgsiException.BadData("expiresAt must be in the future.");
        }

        CheckExclusiveConflicts(updated, (await ListAsync(tenant, ct).ConfigureAwait(false)).Where(r => r.Id != id));
        if (!await store.ReplaceAsync(tenant, Stored(updated), ct).ConfigureAwait(false))
        {
            throw Missing(id);
        }

        _cache.TryRemove(tenant, out _);
    }

    public async Task DeleteAsync(string tenant, string id, CancellationToken ct)
    {
        if (!await store.DeleteAsync(tenant, id, ct).ConfigureAwait(false))
        {
            throw Missing(id);
        }

        _cache.TryRemove(tenant, out _);
        _status.TryRemove((tenant, id), out _);
    }

    /// <summary>Every registration of a tenant, oldest first.</summary>
    public async ValueTask<IReadOnlyList<CSourceRegistration>> ListAsync(string tenant, CancellationToken ct)
    {
        if (_cache.TryGetValue(tenant, out var cached))
        {
            return cached;
        }

        var stored = await store.ListAsync(tenant, ct).ConfigureAwait(false);
        var list = stored.Select(s => RegistrationParser.Build(JsonNode.Parse(s.Json)!.AsObject(), s.CreatedAt, s.ModifiedAt)).ToList();
        // Any tenant header reaches here; "none" is remembered only for a bounded number of them.
        if (list.Count > 0 || _cache.Count < 1024)
        {
            _cache[tenant] = list;
        }

        return list;
    }

    /// <summary>The registrations that may serve <paramref name="operation"/> for the selection: not expired, not
    /// cooling down after a failure, and overlapping the requested entities and attributes.</summary>
    public async ValueTask<IReadOnlyList<CSourceRegistration>> RoutesAsync(string tenant, string operation, EntitySelection selection, CancellationToken ct)
    {
        var all = await ListAsync(tenant, ct).ConfigureAwait(false);
        if (all.Count == 0)
        {
            return [];
        }

        var now = Now();
        return [.. all.Where(r => r.Operations.Contains(operation) && !r.IsExpired(now) && !InCooldown(tenant, r, now) && RegistrationMatch.Matches(r, selection))];
    }

    public RegistrationStatus? Status(string tenant, string id) => _status.TryGetValue((tenant, id), out var status) ? status : null;

    /// <summary>Notes the outcome of one request sent to a source.</summary>
    public void Record(string tenant, string id, bool success) =>
        _status.GetOrAdd((tenant, id), _ => new RegistrationStatus()).Record(success, Now());

    private bool InCooldown(string tenant, CSourceRegistration registration, DateTimeOffset now) =>
        registration.Cooldown is { } cooldown && _status.TryGetValue((tenant, registration.Id), out var status)
        && status.FailedSince(now - cooldown);

    /// <summary>Two exclusive registrations may not claim the same attribute of the same entity (4.3.6.3).</summary>
    private static void CheckExclusiveConflicts(CSourceRegistration registration, IEnumerable<CSourceRegistration> others)
    {
        if (registration.Mode != RegistrationMode.Exclusive)
        {
            return;
        }

        foreach (var other in others.Where(o => o.Mode == RegistrationMode.Exclusive))
        {
            foreach (var mine in registration.Information)
            {
                foreach (var theirs in other.Information)
                {
                    var sameEntity = mine.Entities!.Any(a => theirs.Entities!.Any(b => a.Id == b.Id && a.Types.Any(b.Types.Contains)));
                    if (sameEntity && mine.Attributes!.Any(theirs.Attributes!.Contains))
                    {
                        throw new NgsiException(NgsiErrorType.Conflict,
                            $"Registration '{other.Id}' already holds some of these attributes of these entities exclusively.");
                    }
                }
            }
        }
    }

    private static StoredRegistration Stored(CSourceRegistration r) =>
        new(r.Id, r.Document.ToJsonString(JsonOptions), r.CreatedAt, r.ModifiedAt);

    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static NgsiException Missing(string id) => NgsiException.NotFound($"Registration '{id}' does not exist.");
}

/// <summary>How a context source has been answering (the status members of clause 5.2.9).</summary>
internal sealed class RegistrationStatus
{
    private readonly Lock _lock = new();
    private long _timesSent;
    private long _timesFailed;
    private DateTimeOffset? _lastSuccess;
    private DateTimeOffset? _lastFailure;

    public void Record(bool success, DateTimeOffset at)
    {
        lock (_lock)
        {
            _timesSent++;
            if (success)
            {
                _lastSuccess = at;
            }
            else
            {
                _timesFailed++;
                _lastFailure = at;
            }
        }
    }

    /// <summary>True when the last request failed, at or after <paramref name="since"/>.</summary>
    public bool FailedSince(DateTimeOffset since)
    {
        lock (_lock)
        {
            return _lastFailure is { } failure && failure >= since && (_lastSuccess is null || _lastSuccess < failure);
        }
    }

    public void WriteTo(Utf8JsonWriter w)
    {
        lock (_lock)
        {
            w.WriteString("status", _lastFailure is { } f && (_lastSuccess is null || _lastSuccess < f) ? "failed" : "ok");
            w.WriteNumber("timesSent", _timesSent);
            w.WriteNumber("timesFailed", _timesFailed);
            if (_lastSuccess is { } s)
            {
                w.WriteString("lastSuccess", NgsiText.FormatDateTime(s));
            }

            if (_lastFailure is { } failure)
            {
                w.WriteString("lastFailure", NgsiText.FormatDateTime(failure));
            }
        }
    }
}
