namespace Machi.Broker.Subscriptions;

/// <summary>The MQTT protocol a notification is published with (notifierInfo "MQTT-Version").</summary>
internal enum MqttVersion
{
    V311,
    V500,
}

/// <summary>
/// Where and how an MQTT notification goes (clause 7.2, MQTT notification binding): the broker from
/// mqtt[s]://[user[:password]@]host[:port]/topic[/subtopic]*, the topic from the path, and notifierInfo's
/// "MQTT-Version" (mqtt3.1.1, the default, or mqtt5.0) and "MQTT-QoS" (0, the default, 1 or 2).
/// </summary>
internal sealed record MqttEndpoint(MqttBroker Broker, string Topic, int QoS)
{
    public const string VersionKey = "MQTT-Version";
    public const string QoSKey = "MQTT-QoS";

    public static bool IsMqtt(Uri uri) => uri.Scheme is "mqtt" or "mqtts";

    /// <summary>Reads an mqtt or mqtts endpoint; <paramref name="error"/> says what is wrong when it returns false.</summary>
    public static bool TryParse(Uri uri, IReadOnlyList<KeyValuePair<string, string>> notifierInfo, out MqttEndpoint endpoint, out string error)
    {
        endpoint = null!;
        if (!IsMqtt(uri))
        {
            error = "an MQTT endpoint uri starts with mqtt:// or mqtts://.";
            return false;
        }

        if (uri.Host.Length == 0)
        {
            error = "an MQTT endpoint uri names a broker host: mqtt[s]://[user[:password]@]host[:port]/topic.";
            return false;
        }

        if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            error = "an MQTT endpoint uri has no query or fragment: mqtt[s]://host[:port]/topic.";
            return false;
        }

        var topic = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (topic.Length == 0 || topic.Length > 32767)
        {
            error = "an MQTT endpoint uri names the topic as its path: mqtt[s]://host[:port]/topic[/subtopic]*.";
            return false;
        }

        if (topic.AsSpan().IndexOfAny('+', '#', '\0') >= 0)
        {
            error = "the MQTT topic of a notification cannot contain the wildcards + or #.";
            return false;
        }

        var secure = uri.Scheme == "mqtts";
        var port = uri.Port is > 0 and <= 65535 ? uri.Port : secure ? 8883 : 1883;
        string? user = null;
        string? password = null;
        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            password = colon < 0 ? null : Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        }

        var version = MqttVersion.V311;
        var qos = 0;
        foreach (var (key, value) in notifierInfo)
        {
            if (string.Equals(key, VersionKey, StringComparison.OrdinalIgnoreCase))
            {
                switch (value)
                {
                    case "mqtt3.1.1":
                        version = MqttVersion.V311;
                        break;
                    case "mqtt5.0":
                        version = MqttVersion.V500;
                        break;
                    default:
                        error = $"notifierInfo {VersionKey} must be mqtt3.1.1 or mqtt5.0.";
                        return false;
                }
            }
            else if (string.Equals(key, QoSKey, StringComparison.OrdinalIgnoreCase))
            {
                if (value is not ("0" or "1" or "2"))
                {
                    error = $"notifierInfo {QoSKey} must be 0, 1 or 2.";
                    return false;
                }

                qos = value[0] - '0';
            }
        }

        endpoint = new MqttEndpoint(new MqttBroker(uri.IdnHost, port, secure, user, password, version), topic, qos);
        error = string.Empty;
        return true;
    }
}

/// <summary>One broker connection: notifications to every topic of the same broker, user and version share it.</summary>
internal sealed record MqttBroker(string Host, int Port, bool Secure, string? User, string? Password, MqttVersion Version)
{
    /// <summary>For logs and errors: never the password.</summary>
    public override string ToString() => $"{(Secure ? "mqtts" : "mqtt")}://{(User is null ? string.Empty : User + "@")}{Host}:{Port} ({(Version == MqttVersion.V500 ? "MQTT 5.0" : "MQTT 3.1.1")})";
}
