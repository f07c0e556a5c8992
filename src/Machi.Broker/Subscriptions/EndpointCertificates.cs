using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Subscriptions;

/// <summary>
/// How notification endpoints' TLS certificates (https, mqtts) are checked: by the system's trust store, and also
/// against the certificate authorities in Broker:Subscriptions:TrustedCertificateAuthorities (a PEM file: a city's
/// own CA for its MQTT broker, say). The host name must always match; nothing is accepted unchecked.
/// </summary>
internal sealed class EndpointCertificates
{
    private readonly X509Certificate2Collection _authorities = [];

    public EndpointCertificates(IOptions<SubscriptionOptions> options)
    {
        if (options.Value.TrustedCertificateAuthorities is { Length: > 0 } path)
        {
            _authorities.ImportFromPemFile(path);
            if (_authorities.Count == 0)
            {
                throw new InvalidOperationException($"Broker:Subscriptions:TrustedCertificateAuthorities: no certificate in '{path}'.");
            }
        }
    }

    /// <summary>True when the server certificate is trusted for the host it was asked for.</summary>
    public bool Validate(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || _authorities.Count == 0 || certificate is null)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_authorities);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }
}
