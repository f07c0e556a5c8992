using Machi.Ngsi.Model;

namespace Machi.Broker.Access;

/// <summary>Writes to the access log what a caller was shown or changed of residents' personal data (not their own).</summary>
public sealed class AccessAudit(IAccessLog log, TimeProvider time)
{
    /// <summary>This node's name in the log (several nodes may serve one city).</summary>
    public string Node { get; init; } = Environment.MachineName;

    /// <summary>Logs the third-party personal entities among <paramref name="entities"/>; completes once logged.</summary>
    public Task RecordAsync(Caller caller, string tenant, IEnumerable<Entity> entities, string operation, IReadOnlyCollection<string>? attributes = null)
    {
        List<AccessRecord>? records = null;
        foreach (var entity in entities)
        {
            var access = EntityAccess.Of(entity);
            if (AccessPolicy.IsThirdParty(caller, access))
            {
                (records ??= []).Add(Record(caller, tenant, entity.Id, access.Owner!, operation, attributes));
            }
        }

        return records is null ? Task.CompletedTask : log.AppendAsync(records);
    }

    public Task LogAsync(IReadOnlyList<AccessRecord> records) => log.AppendAsync(records);

    public AccessRecord Record(Caller caller, string tenant, string entityId, string resident, string operation, IReadOnlyCollection<string>? attributes = null) =>
        new(time.GetUtcNow(), resident, caller.ClientId, caller.Subject, caller.Purpose,
            AccessPolicy.IsEmergency(caller) ? caller.EmergencyReason : null,
            AccessPolicy.IsEmergency(caller) ? "emergency-" + operation : operation,
            tenant, entityId, attributes is { Count: > 0 } ? string.Join(' ', attributes) : null, Node);
}
