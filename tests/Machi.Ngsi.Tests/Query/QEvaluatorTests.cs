using System.Globalization;
using System.Text.Json;
using CsCheck;
using Machi.Ngsi.Errors;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;
using static Machi.Ngsi.Tests.Query.QueryTestKit;

namespace Machi.Ngsi.Tests.Query;

public class QEvaluatorTests
{
    // The Vehicle and OffStreetParking of the specification's examples, with a few more attribute types.
    private static readonly Entity Vehicle = Entity("""
        {"id":"urn:ngsi-ld:Vehicle:A4567","type":"Vehicle",
         "brandName":{"type":"Property","value":"Mercedes"},
         "speed":[{"type":"Property","value":55,"datasetId":"urn:ngsi-ld:Dataset:gps","observedAt":"2017-07-29T12:00:04Z"},
                  {"type":"Property","value":54.5,"datasetId":"urn:ngsi-ld:Dataset:wheel"}],
         "temperature":{"type":"Property","value":22.5,"unitCode":"CEL","observedAt":"2017-12-24T12:00:00Z"},
         "isParked":{"type":"Relationship","object":"urn:ngsi-ld:OffStreetParking:Downtown1","observedAt":"2017-07-29T12:00:04Z",
                     "providedBy":{"type":"Relationship","object":"urn:ngsi-ld:Person:Bob"}},
         "address":{"type":"Property","value":{"city":"Berlin","street":{"name":"Ufer","number":12}}},
         "sensor":{"type":"Property","value":"s1","rawdata":{"type":"Property","value":{"airquality":{"particulate":40}}}},
         "open":{"type":"Property","value":true},
         "tags":{"type":"Property","value":["red","fast",7]},
         "inspected":{"type":"Property","value":"2018-12-31"},
         "opensAt":{"type":"Property","value":"08:30:00Z"},
         "serviced":{"type":"Property","value":{"@type":"DateTime","@value":"2018-06-01T10:00:00+09:00"}},
         "street":{"type":"LanguageProperty","languageMap":{"ja":"大町通り","en":"Omachi Street"}},
         "category":{"type":"VocabProperty","vocab":["municipalServices","commercial"]},
         "route":{"type":"ListProperty","valueList":[3,1,4]},
         "stops":{"type":"ListRelationship","objectList":[{"object":"urn:ngsi-ld:Stop:1"},{"object":"urn:ngsi-ld:Stop:2"}]},
         "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[139.93,37.49]}}}
        """);

    [Theory]
    [InlineData("temperature>=20", true)]
    [InlineData("temperature>22.5", false)]
    [InlineData("temperature<=22.5", true)]
    [InlineData("temperature<22.5", false)]
    [InlineData("temperature==22.5", true)]
    [InlineData("brandName!=\"Mercedes\"", false)]
    [InlineData("brandName==\"Mercedes\"", true)]
    [InlineData("brandName>\"Audi\"", true)]
    [InlineData("brandName<\"Audi\"", false)]
    [InlineData("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", true)]
    [InlineData("isParked==\"urn:ngsi-ld:OffStreetParking:Downtown1\"", true)]
    [InlineData("isParked!=urn:ngsi-ld:OffStreetParking:Downtown1", false)]
    [InlineData("isParked==urn:ngsi-ld:OffStreetParking:Other", false)]
    [InlineData("isMonitoredBy", false)]
    [InlineData("!isMonitoredBy", true)]
    [InlineData("isParked", true)]
    [InlineData("!isParked", false)]
    [InlineData("(temperature>=20;temperature<=25)|capacity<=10", true)]
    [InlineData("(temperature>=23;temperature<=25)|capacity<=10", false)]
    [InlineData("temperature.observedAt>=2017-12-24T12:00:00Z", true)]
    [InlineData("temperature.observedAt>2017-12-24T12:00:00Z", false)]
    [InlineData("temperature.observedAt==2017-12-24T21:00:00+09:00", true)]
    [InlineData("temperature.unitCode==\"CEL\"", true)]
    [InlineData("address[city]==\"Berlin\"", true)]
    [InlineData("address[city]==\"Paris\"", false)]
    [InlineData("address[street][number]>10", true)]
    [InlineData("address[street]", true)]
    [InlineData("address[country]", false)]
    [InlineData("sensor.rawdata[airquality][particulate]==40", true)]
    [InlineData("sensor.rawdata[airquality][particulate]==41", false)]
    [InlineData("isParked.providedBy==urn:ngsi-ld:Person:Bob", true)]
    [InlineData("isParked.observedAt<2018-01-01T00:00:00Z", true)]
    [InlineData("temperature==20..25", true)]
    [InlineData("temperature==22.5..25", true)]
    [InlineData("temperature==23..25", false)]
    [InlineData("temperature!=20..25", false)]
    [InlineData("temperature!=23..25", true)]
    [InlineData("temperature==1,22.5,3", true)]
    [InlineData("temperature!=1,22.5,3", false)]
    [InlineData("temperature!=1,2,3", true)]
    [InlineData("open==true", true)]
    [InlineData("open==false", false)]
    [InlineData("open!=false", true)]
    [InlineData("brandName~=(?i)mercedes", true)]
    [InlineData("brandName~=^Merc", true)]
    [InlineData("brandName~=^erc", false)]
    [InlineData("brandName!~=(?i)mercedes", false)]
    [InlineData("brandName!~=^Audi", true)]
    [InlineData("temperature~=2", false)]
    [InlineData("temperature!~=2", false)]
    public void Spec_examples_select_as_the_clause_describes(string q, bool expected) =>
        Assert.Equal(expected, Matches(Vehicle, q));

    [Theory]
    [InlineData("tags==\"red\"", true)]
    [InlineData("tags==7", true)]
    [InlineData("tags==\"blue\"", false)]
    [InlineData("tags!=\"red\"", false)]
    [InlineData("tags!=\"blue\"", true)]
    [InlineData("tags>6", true)]
    [InlineData("tags~=^fa", true)]
    [InlineData("tags!~=^fa", false)]
    [InlineData("route==4", true)]
    [InlineData("route==2", false)]
    [InlineData("route>3", true)]
    [InlineData("stops==urn:ngsi-ld:Stop:2", true)]
    [InlineData("stops==urn:ngsi-ld:Stop:3", false)]
    public void An_array_value_satisfies_a_comparison_when_any_element_does(string q, bool expected) =>
        Assert.Equal(expected, Matches(Vehicle, q));

    [Theory]
    [InlineData("speed==55", true)]
    [InlineData("speed==54.5", true)]
    [InlineData("speed>54.9", true)]
    [InlineData("speed>55", false)]
    [InlineData("speed.datasetId==urn:ngsi-ld:Dataset:wheel", true)]
    [InlineData("speed.observedAt==2017-07-29T12:00:04Z", true)]
    [InlineData("speed!=55", true)] // the wheel instance is not 55
    public void Any_instance_of_a_multi_instance_attribute_may_satisfy_the_term(string q, bool expected) =>
        Assert.Equal(expected, Matches(Vehicle, q));

    [Theory]
    [InlineData("capacity==1")]
    [InlineData("capacity!=1")]
    [InlineData("capacity>1")]
    [InlineData("capacity~=x")]
    [InlineData("capacity!~=x")]
    [InlineData("temperature.accuracy==1")]
    [InlineData("temperature.accuracy!=1")]
    [InlineData("brandName.observedAt!=2017-12-24T12:00:00Z")]
    [InlineData("address[country]!=\"DE\"")]
    public void A_missing_target_satisfies_no_comparison_not_even_not_equal(string q) =>
        Assert.False(Matches(Vehicle, q));

    [Theory]
    [InlineData("street==\"Omachi Street\"", true)]
    [InlineData("street==\"大町通り\"", true)]
    [InlineData("street[en]==\"Omachi Street\"", true)]
    [InlineData("street[ja]==\"Omachi Street\"", false)]
    [InlineData("street[EN]==\"Omachi Street\"", true)]
    [InlineData("street[fr]", false)]
    [InlineData("street~=^大町", true)]
    public void A_LanguageProperty_compares_its_strings_and_brackets_select_a_language(string q, bool expected) =>
        Assert.Equal(expected, Matches(Vehicle, q));

    [Theory]
    [InlineData("category==\"commercial\"", true)]
    [InlineData("category==\"industrial\"", false)]
    [InlineData("category==https://uri.etsi.org/ngsi-ld/default-context/municipalServices", true)]
    [InlineData("category!=\"commercial\"", false)]
    public void A_VocabProperty_is_compared_after_expanding_the_query_value(string q, bool expected) =>
        Assert.Equal(expected, Matches(Vehicle, q));

    [Theory]
    [InlineData("inspected==2018-12-31", true)]
    [InlineData("inspected<2019-01-01", true)]
    [InlineData("inspected>2019-01-01", false)]
    [InlineData("inspected==2018-01-01..2018-12-31", true)]
    [InlineData("opensAt<09:00:00Z", true)]
    [InlineData("opensAt>09:00:00Z", false)]
    [InlineData("serviced==2018-06-01T01:00:00Z", true)]
    [InlineData("serviced<2018-06-01T01:00:01Z", true)]
    [InlineData("inspected==\"2018-12-31\"", true)]
    [InlineData("brandName<2019-01-01", false)]
    public void Dates_times_and_date_times_compare_as_instants(string q, bool expected) =>
        Assert.Equal(expected, Matches(Vehicle, q));

    [Theory]
    [InlineData("temperature==\"22.5\"")]
    [InlineData("brandName>1")]
    [InlineData("open==1")]
    [InlineData("open>false")]
    public void Values_of_different_types_never_compare(string q) => Assert.False(Matches(Vehicle, q));

    [Fact]
    public void Entity_system_timestamps_of_attributes_are_meta_attributes()
    {
        Assert.True(Matches(Vehicle, $"brandName.createdAt=={NgsiText.FormatDateTime(Now)}"));
        Assert.True(Matches(Vehicle, "brandName.modifiedAt>2026-01-01T00:00:00Z"));
        Assert.False(Matches(Vehicle, "brandName.modifiedAt>2027-01-01T00:00:00Z"));
    }

    [Fact]
    public void Expansion_expands_attribute_and_sub_attribute_names_but_not_meta_attributes_or_members()
    {
        var expanded = Q("sensor.rawdata[airquality][particulate]==40;temperature.observedAt>2020-01-01T00:00:00Z");
        var terms = ((QLogical)expanded).Terms;
        var first = ((QComparison)terms[0]).Path;
        var second = ((QComparison)terms[1]).Path;
        Assert.Equal([Expand("sensor"), Expand("rawdata")], first.Names);
        Assert.Equal(["airquality", "particulate"], first.Members);
        Assert.Equal([Expand("temperature"), "observedAt"], second.Names);
        Assert.NotEqual("sensor", Expand("sensor"));
    }

    [Fact]
    public void Unexpanded_names_do_not_find_the_expanded_attributes() =>
        Assert.False(QEvaluator.Matches(Vehicle, QParser.Parse("temperature==22.5")));

    [Fact]
    public void One_compiled_query_evaluates_many_entities()
    {
        var query = new CompiledQuery(Q("speed>50;brandName~=^M"));
        var matches = Enumerable.Range(0, 100).Count(i => query.Matches(Entity(
            $$$"""{"id":"urn:ngsi-ld:Vehicle:{{{i}}}","type":"Vehicle","speed":{"type":"Property","value":{{{i}}}},"brandName":{"type":"Property","value":"{{{(i % 2 == 0 ? "Mazda" : "Audi")}}}"}}""")));
        Assert.Equal(24, matches); // even speeds 52..98
    }

    [Fact]
    public void A_pattern_the_linear_engine_cannot_run_is_BadRequestData()
    {
        var ex = Assert.Throws<NgsiException>(() => new CompiledQuery(new QPattern(new QPath([Expand("a")], []), false, "(a)\\1")));
        Assert.Equal(NgsiErrorType.BadRequestData, ex.Type);
    }

    // Property test: random single-valued or array attributes against random comparisons, checked against a
    // plain reference written over C# values instead of the JSON model.
    private static readonly Gen<object> ScalarGen = Gen.OneOf(
        Gen.Int[-3, 3].Select(i => (object)(double)i),
        Gen.OneOfConst("a", "b", "c").Select(s => (object)s),
        Gen.Bool.Select(b => (object)b));

    private static readonly Gen<object?> AttributeGen = Gen.Frequency(
        (1, Gen.Const((object?)null)),
        (4, ScalarGen.Select(v => (object?)v)),
        (2, ScalarGen.Array[0, 3].Select(a => (object?)a)));

    private static readonly Gen<QValue> QScalarGen = Gen.OneOf(
        Gen.Int[-4, 4].Select(i => (QValue)new QNumber(i)),
        Gen.OneOfConst("a", "b", "c", "d").Select(s => (QValue)new QString(s)),
        Gen.Bool.Select(b => (QValue)new QBoolean(b)));

    private static readonly Gen<QComparison> ComparisonGen = Gen.Select(
        Gen.OneOfConst("p", "r", "s"), Gen.Enum<QOperator>(), Gen.Int[0, 2], QScalarGen.Array[2, 3]).Select((name, op, shape, values) =>
        {
            var equality = op is QOperator.Equal or QOperator.NotEqual;
            QValue value = !equality || shape == 0 ? values[0] : shape == 1 ? new QList(values) : new QRange(values[0], values[1]);
            return new QComparison(new QPath([name], []), op, value);
        });

    [Fact]
    public void Random_comparisons_agree_with_a_plain_reference() =>
        Gen.Select(AttributeGen.Array[3], ComparisonGen).Sample((attributes, comparison) =>
        {
            var names = new[] { "p", "r", "s" };
            var members = names.Zip(attributes).Where(p => p.Second is not null)
                .Select(p => $"\"{p.First}\":{{\"type\":\"Property\",\"value\":{JsonSerializer.Serialize(p.Second)}}}");
            var entity = Entity($"{{\"id\":\"urn:ngsi-ld:T:1\",\"type\":\"T\"{string.Concat(members.Select(m => "," + m))}}}");
            var expected = Reference(attributes[Array.IndexOf(names, comparison.Path.Attribute)], comparison);
            var expanded = QExpressions.Expand(comparison, Expand);
            Assert.Equal(expected, QEvaluator.Matches(entity, expanded));
        }, iter: 20_000);

    private static bool Reference(object? attribute, QComparison comparison)
    {
        if (attribute is null)
        {
            return false;
        }

        var elements = attribute is object[] array ? array : [attribute];
        static object Plain(QValue v) => v switch
        {
            QNumber n => n.Value,
            QString s => s.Value,
            QBoolean b => b.Value,
            _ => throw new InvalidOperationException(),
        };

        static int? Order(object x, object y) => (x, y) switch
        {
            (double a, double b) => a.CompareTo(b),
            (string a, string b) => string.CompareOrdinal(a, b),
            _ => null,
        };

        bool Equal() => comparison.Value switch
        {
            QList list => elements.Any(e => list.Values.Any(v => e.Equals(Plain(v)))),
            QRange range => elements.Any(e => Order(e, Plain(range.From)) >= 0 && Order(e, Plain(range.To)) <= 0),
            var single => elements.Any(e => e.Equals(Plain(single))),
        };

        return comparison.Operator switch
        {
            QOperator.Equal => Equal(),
            QOperator.NotEqual => !Equal(),
            QOperator.Greater => elements.Any(e => Order(e, Plain(comparison.Value)) > 0),
            QOperator.GreaterOrEqual => elements.Any(e => Order(e, Plain(comparison.Value)) >= 0),
            QOperator.Less => elements.Any(e => Order(e, Plain(comparison.Value)) < 0),
            _ => elements.Any(e => Order(e, Plain(comparison.Value)) <= 0),
        };
    }

    [Fact]
    public void Format_of_numbers_does_not_change_the_comparison() =>
        Gen.Double[-1e9, 1e9].Sample(d =>
        {
            var entity = Entity($"{{\"id\":\"urn:ngsi-ld:T:1\",\"type\":\"T\",\"n\":{{\"type\":\"Property\",\"value\":{d.ToString("R", CultureInfo.InvariantCulture)}}}}}");
            Assert.True(Matches(entity, $"n=={d.ToString("R", CultureInfo.InvariantCulture)}"));
            Assert.True(Matches(entity, $"n>={d.ToString("R", CultureInfo.InvariantCulture)}"));
        }, iter: 2_000);
}
