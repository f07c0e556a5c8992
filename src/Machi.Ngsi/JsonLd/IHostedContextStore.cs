using System.Collections.Concurrent;

namespace Machi.Ngsi.JsonLd;

/// <summary>A context the broker hosts: posted to /jsonldContexts, or created implicitly for a Link header.</summary>
/// <param name="LocalId">The identifier in <c>/ngsi-ld/v1/jsonldContexts/{localId}</c>.</param>
/// <param name="Json">The document as served: a JSON object whose "@context" member is the context.</param>
/// <param name="Kind"><see cref="ContextKind.Hosted"/> or <see cref="ContextKind.ImplicitlyCreated"/>.</param>
/// <param name="CreatedAt">When the context was added.</param>
public sealed record HostedContextRecord(string LocalId, string Json, ContextKind Kind, DateTimeOffset CreatedAt);

/// <summary>Keeps hosted contexts across restarts (SQLite in the broker, memory in tests).</summary>
public interface IHostedContextStore
{
    Task<IReadOnlyList<HostedContextRecord>> ListAsync(CancellationToken cancellationToken);

    Task<HostedContextRecord?> GetAsync(string localId, CancellationToken cancellationToken);

    /// <summary>Inserts or replaces the record with the same local identifier.</summary>
    Task PutAsync(HostedContextRecord record, CancellationToken cancellationToken);

    /// <summary>True when a record was deleted.</summary>
    Task<bool> DeleteAsync(string localId, CancellationToken cancellationToken);
}

/// <summary>An <see cref="IHostedContextStore"/> that lives as long as the process (tests, throwaway brokers).</summary>
public sealed class InMemoryHostedContextStore : IHostedContextStore
{
    private readonly ConcurrentDictionary<string, HostedContextRecord> _records = new(StringComparer.Ordinal);

    public Task<IReadOnlyList<HostedContextRecord>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<HostedContextRecord>>([.. _records.Values]);

    public Task<HostedContextRecord?> GetAsync(string localId, CancellationToken cancellationToken) =>
        Task.FromResult(_records.GetValueOrDefault(localId));

    public Task PutAsync(HostedContextRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        _records[record.LocalId] = record;
        return Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(string localId, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryRemove(localId, out _));
}
