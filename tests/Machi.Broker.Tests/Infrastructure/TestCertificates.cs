using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Machi.Broker.Tests.Infrastructure;

/// <summary>A throwaway certificate authority and a server certificate it issued for 127.0.0.1 (and localhost).</summary>
public sealed class TestCertificates : IDisposable
{
    private readonly RSA _caKey = RSA.Create(2048);
    private readonly RSA _serverKey = RSA.Create(2048);
    private readonly X509Certificate2 _ca;
    private readonly X509Certificate2 _server;

    public TestCertificates()
    {
        var now = DateTimeOffset.UtcNow;
        var caRequest = new CertificateRequest("CN=Machi test CA", _caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        _ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));

        var serverRequest = new CertificateRequest("CN=127.0.0.1", _serverKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        serverRequest.CertificateExtensions.Add(names.Build());
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        _server = serverRequest.Create(_ca, now.AddMinutes(-5), now.AddDays(1), RandomNumberGenerator.GetBytes(8));
    }

    /// <summary>Writes the CA certificate (PEM) into <paramref name="directory"/>; its path.</summary>
    public string WriteAuthority(string directory) => Write(directory, "ca.pem", _ca.ExportCertificatePem());

    public string WriteServerCertificate(string directory) => Write(directory, "server.pem", _server.ExportCertificatePem());

    public string WriteServerKey(string directory) => Write(directory, "server.key", _serverKey.ExportPkcs8PrivateKeyPem());

    public void Dispose()
    {
        _ca.Dispose();
        _server.Dispose();
        _caKey.Dispose();
        _serverKey.Dispose();
    }

    private static string Write(string directory, string name, string pem)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, pem);
        return path;
    }
}
