using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Machi.Ngsi.Errors;
using Machi.Trust.Clients;
using OpenIddict.Abstractions;

namespace Machi.Broker.Access;

/// <summary>
/// Grants and revokes residents' consents, each with a receipt modelled on the Kantara Consent Receipt (v1.1), and keeps
/// <see cref="AccessPolicy"/>'s in-memory grants in step, so a revocation takes effect on the next request.
/// </summary>
public sealed class ConsentService(IConsentStore store, AccessPolicy policy, IOpenIddictApplicationManager applications, TimeProvider time)
{
    public static readonly TimeSpan DefaultDuration = TimeSpan.FromDays(365);

    /// <summary>
    /// Consents a resident gives to a registered service, for one of the purposes and some of the data categories the
    /// service registered; BadRequestData otherwise or for malformed terms.
    /// </summary>
    public async Task<(Consent Consent, string Receipt)> GrantAsync(
        string resident, ServiceProfile service, string purpose, IReadOnlyList<string> categories, DateTimeOffset? expiresAt, string? termsVersion,
        CancellationToken cancellationToken)
    {
        CheckToken("purpose", purpose);
        if (categories.Count == 0)
        {
            throw NgsiException.BadData("A consent names at least one data category.");
        }

        foreach (var category in categories)
        {
            CheckToken("category", category);
        }

        if (!service.Covers(purpose, categories))
        {
            throw NgsiException.BadData(
                $"The service '{service.ClientId}' registered the purposes [{string.Join(", ", service.Purposes)}] and the categories [{string.Join(", ", service.Categories)}]: a consent can cover only those.");
        }

        var clientId = service.ClientId;
        var name = service.Name;
        var now = time.GetUtcNow();
        var expires = expiresAt ?? now + DefaultDuration;
        if (expires <= now)
        {
            throw NgsiException.BadData("A consent must expire in the future.");
        }

        var consent = new Consent("urn:machi:consent:" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), resident, clientId, purpose,
            [.. categories.Distinct(StringComparer.Ordinal)], now, expires, termsVersion is { Length: > 0 } ? termsVersion : "1");
        var receipt = Receipt(consent, name, now, revoked: false);
        await store.AddAsync(consent, receipt, cancellationToken).ConfigureAwait(false);
        policy.Granted(consent);
        return (consent, receipt);
    }

    /// <summary>Revokes a resident's consent; its receipt, or null when the resident has no such active consent.</summary>
    public async Task<string?> RevokeAsync(string resident, string consentId, CancellationToken cancellationToken)
    {
        var consents = await store.ListAsync(resident, cancellationToken).ConfigureAwait(false);
        var consent = consents.FirstOrDefault(c => c.Id == consentId && c.RevokedAt is null);
        if (consent is null)
        {
            return null;
        }

        var now = time.GetUtcNow();
        var service = await applications.FindByClientIdAsync(consent.ClientId, cancellationToken).ConfigureAwait(false);
        var name = service is null ? consent.ClientId : await applications.GetDisplayNameAsync(service, cancellationToken).ConfigureAwait(false) ?? consent.ClientId;
        var receipt = Receipt(consent, name, now, revoked: true);

        // Access ends first in memory (this node answers no further request with it), then durably.
        policy.Revoked(consent);
        if (!await store.RevokeAsync(resident, consentId, now, receipt, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        // Again after the commit: grants read again meanwhile (another node's change) may have been read before it.
        policy.Revoked(consent);

        // Another active consent may cover some of the same grants.
        foreach (var other in consents.Where(c => c.Id != consentId && c.IsActive(now)))
        {
            policy.Granted(other);
        }

        return receipt;
    }

    public Task<IReadOnlyList<Consent>> ListAsync(string resident, CancellationToken cancellationToken) => store.ListAsync(resident, cancellationToken);

    public Task<string?> ReceiptAsync(string resident, string consentId, bool revocation, CancellationToken cancellationToken) =>
        store.ReceiptAsync(resident, consentId, revocation, cancellationToken);

    /// <summary>Deletes every consent of a resident (erasure).</summary>
    public async Task<int> EraseAsync(string resident, CancellationToken cancellationToken)
    {
        policy.Forget(resident);
        return await store.DeleteResidentAsync(resident, cancellationToken).ConfigureAwait(false);
    }

    private static void CheckToken(string what, string value)
    {
        if (!ServiceProfile.IsToken(value))
        {
            throw NgsiException.BadData($"A {what} is 1–64 lower-case letters, digits, '-', '_' or '.'.");
        }
    }

    /// <summary>The receipt (Kantara Initiative Consent Receipt Specification v1.1 members, Machi's additions prefixed machi).</summary>
    private static string Receipt(Consent consent, string serviceName, DateTimeOffset at, bool revoked)
    {
        var receipt = new JsonObject
        {
            ["version"] = "KI-CR-v1.1.0",
            ["jurisdiction"] = "JP",
            ["consentTimestamp"] = at.ToUnixTimeSeconds(),
            ["collectionMethod"] = revoked ? "revocation by the resident (Machi)" : "opt-in by the resident on Machi's consent page",
            ["consentReceiptID"] = consent.Id + (revoked ? ":revocation" : ""),
            ["language"] = "ja",
            ["piiPrincipalId"] = consent.Resident,
            ["piiControllers"] = new JsonArray(new JsonObject { ["piiController"] = serviceName, ["machiClientId"] = consent.ClientId }),
            ["policyUrl"] = $"/services/{Uri.EscapeDataString(consent.ClientId)}/terms/{Uri.EscapeDataString(consent.TermsVersion)}",
            ["services"] = new JsonArray(new JsonObject
            {
                ["service"] = serviceName,
                ["purposes"] = new JsonArray(new JsonObject
                {
                    ["purpose"] = consent.Purpose,
                    ["consentType"] = "EXPLICIT",
                    ["piiCategory"] = new JsonArray([.. consent.Categories.Select(c => (JsonNode)c)]),
                    ["primaryPurpose"] = true,
                    ["termination"] = consent.ExpiresAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                    ["thirdPartyDisclosure"] = false,
                }),
            }),
            ["sensitive"] = consent.Categories.Any(c => c is "vitals" or "health"),
            ["spiCat"] = new JsonArray([.. consent.Categories.Where(c => c is "vitals" or "health").Select(c => (JsonNode)c)]),
            ["machiConsentStatus"] = revoked ? "revoked" : "granted",
            ["machiGrantedAt"] = consent.GrantedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["machiTermsVersion"] = consent.TermsVersion,
        };
        return receipt.ToJsonString();
    }
}
