using System.Text;
using System.Text.Json;
using CsCheck;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;

namespace Machi.Ngsi.Tests.Model;

public class EntityCodecTests
{
    private static readonly DateTimeOffset Created = new(2026, 11, 25, 9, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Modified = new(2026, 11, 26, 10, 30, 0, TimeSpan.Zero);

    private static Entity Parse(string json) =>
        EntityParser.ParseEntity(JsonDocument.Parse(json).RootElement, LdContext.Core, Created);

    private static AttributeInstance Instance(string payload, DateTimeOffset created, DateTimeOffset modified, AttributeKind kind = AttributeKind.Property)
    {
        var instance = AttributeInstance.FromStored(kind, Encoding.UTF8.GetBytes(payload));
        instance.CreatedAt = created;
        instance.ModifiedAt = modified;
        return instance;
    }

    [Fact]
    public void Stored_form_abbreviates_NGSI_LD_names_and_leaves_out_the_timestamps_instances_share_with_the_entity()
    {
        var entity = Parse("""
            {"id":"urn:ngsi-ld:Vehicle:1","type":"Vehicle",
             "speed":{"type":"Property","value":25.2,"unitCode":"KMH","observedAt":"2025-01-15T07:06:32Z"},
             "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.93,37.49]}},
             "isPartOf":{"type":"Relationship","object":"urn:ngsi-ld:VehicleFleet:1"}}
            """);

        var stored = EntityCodec.Encode(entity);
        var text = Encoding.UTF8.GetString(stored);

        Assert.DoesNotContain("https://uri.etsi.org/ngsi-ld/", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\"k\":\"Property\"", text, StringComparison.Ordinal);
        Assert.Single(text.Split("\"c\":"), part => part.Length > 0 && char.IsDigit(part[0]));
        var decoded = EntityCodec.Decode(stored);
        Assert.Equal(entity.Types, decoded.Types);
        Assert.Equal(entity.Attributes.Keys, decoded.Attributes.Keys);
        foreach (var (name, instances) in entity.Attributes)
        {
            var back = decoded.Attributes[name][0];
            Assert.Equal(instances[0].Kind, back.Kind);
            Assert.Equal(instances[0].CreatedAt, back.CreatedAt);
            Assert.Equal(instances[0].ModifiedAt, back.ModifiedAt);
            Assert.Equal(instances[0].PayloadUtf8.ToArray(), back.PayloadUtf8.ToArray());
        }
    }

    [Fact]
    public void Instances_and_sub_attributes_with_timestamps_of_their_own_keep_them()
    {
        var later = Modified.AddMinutes(5);
        var speed = Instance("1", Created, later);
        speed.Sub = new AttributeMap { ["https://example.org/accuracy"] = [Instance("0.5", later, later)] };
        var entity = new Entity("urn:x:1", ["https://example.org/X"])
        {
            CreatedAt = Created,
            ModifiedAt = Modified,
            Attributes = new AttributeMap
            {
                ["https://example.org/speed"] = [speed],
                ["https://example.org/name"] = [Instance("\"a\"", Created, Modified)],
            },
        };

        var decoded = EntityCodec.Decode(EntityCodec.Encode(entity));

        var back = decoded.Attributes["https://example.org/speed"][0];
        Assert.Equal((Created, later), (back.CreatedAt, back.ModifiedAt));
        var sub = back.Sub!["https://example.org/accuracy"][0];
        Assert.Equal((later, later), (sub.CreatedAt, sub.ModifiedAt));
        var name = decoded.Attributes["https://example.org/name"][0];
        Assert.Equal((Created, Modified), (name.CreatedAt, name.ModifiedAt));
        Assert.Equal((Created, Modified), (decoded.CreatedAt, decoded.ModifiedAt));
    }

    [Fact]
    public void Version_1_documents_are_read_as_they_were_written()
    {
        const string v1 = """
            {"v":1,"id":"urn:x:1","type":["~dVehicle"],"c":17957754348762450,"m":17957754348762460,
             "attrs":{"~dspeed":[{"k":"Property","p":25.2,"oa":"2025-01-15T07:06:32Z","c":17957754348762450,"m":17957754348762455}],
                      "https://uri.etsi.org/ngsi-ld/location":[{"k":"GeoProperty","p":{"type":"Point","coordinates":[1,2]},"c":1,"m":2}]}}
            """;

        var entity = EntityCodec.Decode(Encoding.UTF8.GetBytes(v1));

        Assert.Equal(["~dVehicle"], entity.Types);
        Assert.Equal(["~dspeed", "https://uri.etsi.org/ngsi-ld/location"], entity.Attributes.Keys);
        var speed = entity.Attributes["~dspeed"][0];
        Assert.Equal(DateTimeOffset.UnixEpoch.AddTicks(17957754348762455), speed.ModifiedAt);
        Assert.Equal(DateTimeOffset.UnixEpoch.AddTicks(2), entity.Attributes["https://uri.etsi.org/ngsi-ld/location"][0].ModifiedAt);
    }

    [Fact]
    public void Any_names_round_trip_whatever_they_share_with_the_abbreviations()
    {
        var piece = Gen.OneOfConst("~", "~~", "d", "n", "x", "é", "/", CoreContext.DefaultVocab, "https://uri.etsi.org/ngsi-ld/");
        var name = piece.Array[1, 5].Select(parts => string.Concat(parts));
        Gen.Select(name.Array[1, 4], name, name).Sample((names, type, subName) =>
        {
            var attributes = new AttributeMap();
            foreach (var n in names)
            {
                var instance = Instance("1", Created, Modified);
                instance.Sub = new AttributeMap { [subName] = [Instance("2", Created, Modified)] };
                attributes[n] = [instance];
            }

            var entity = new Entity("urn:x:1", [type]) { CreatedAt = Created, ModifiedAt = Modified, Attributes = attributes };

            var decoded = EntityCodec.Decode(EntityCodec.Encode(entity));

            Assert.Equal(entity.Types, decoded.Types);
            Assert.Equal(entity.Attributes.Keys, decoded.Attributes.Keys);
            Assert.All(decoded.Attributes.Values, instances => Assert.Equal([subName], instances[0].Sub!.Keys));
        }, iter: 5_000);
    }

    [Fact]
    public void A_history_instance_is_stored_without_its_own_timestamps_and_its_sub_attributes_with_theirs()
    {
        var later = Modified.AddMinutes(5);
        var instance = Instance("3", Created, Modified, AttributeKind.Property);
        instance.Sub = new AttributeMap { ["https://example.org/accuracy"] = [Instance("0.5", later, later)] };

        var carrier = EntityCodec.Decode(EntityCodec.EncodeInstance(instance));

        var back = carrier.Attributes[string.Empty][0];
        Assert.Equal(default, back.CreatedAt);
        Assert.Equal("3", Encoding.UTF8.GetString(back.PayloadUtf8));
        var sub = back.Sub!["https://example.org/accuracy"][0];
        Assert.Equal((later, later), (sub.CreatedAt, sub.ModifiedAt));
    }
}
