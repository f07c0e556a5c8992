using System.Globalization;
using System.Text.Json.Nodes;
using CsCheck;
using Machi.Broker.Storage;
using Machi.Broker.Temporal;
using Machi.Ngsi.Model;

namespace Machi.Broker.Tests.Temporal;

/// <summary>
/// A folded creation (<see cref="FoldedCreation"/>) read back through <see cref="UnfoldedInstances"/> gives exactly
/// what a row an instance gave: the same instances, numbers and times, merged into the other rows in the history's
/// key order, whatever the attributes, times and query.
/// </summary>
public sealed class UnfoldedInstancesTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 8, 0, 0, TimeSpan.Zero);

    // Term ids deliberately out of the names' alphabetical order: the history orders attributes by term id.
    private static readonly (string Name, long Term)[] Attributes =
        [("https://example.org/a", 7), ("https://example.org/b", 3), ("https://example.org/c", 11), ("https://example.org/d", 5)];

    // A few minutes apart at most: equal times, whose order the instance numbers decide, are common.
    private static readonly Gen<DateTimeOffset> Time = Gen.Int[0, 8].Select(minutes => Start.AddMinutes(minutes));

    private static readonly Gen<Entity> Created = Gen.Select(
        Gen.Int[0, Attributes.Length - 1].Select(Gen.Int[1, 3], Gen.Bool, Time, Time).Array[1, 8],
        Time,
        (instances, created) =>
        {
            var entity = new Entity("urn:ngsi-ld:Thing:1", ["https://example.org/Thing"]) { CreatedAt = created, ModifiedAt = created };
            foreach (var (attribute, value, hasObserved, observed, modified) in instances)
            {
                var name = Attributes[attribute].Name;
                var list = entity.Attributes.TryGetValue(name, out var existing) ? existing : [];
                list.Add(new AttributeInstance(AttributeKind.Property, JsonValue.Create(value))
                {
                    DatasetId = list.Count == 0 ? null : $"urn:ngsi-ld:Dataset:{list.Count}",
                    ObservedAt = hasObserved ? observed.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture) : null,
                    CreatedAt = modified,
                    ModifiedAt = modified,
                });
                entity.Attributes[name] = list;
            }

            return entity;
        });

    /// <summary>Rows of later writes: attribute, time and a number unlike any of the creation's.</summary>
    private static readonly Gen<(int Attribute, DateTimeOffset Time)[]> Stored = Gen.Select(Gen.Int[0, Attributes.Length - 1], Time).Array[0, 12];

    private static readonly Gen<TemporalQuery> Query = Gen.Select(Gen.Int[0, 3], Time, Gen.Int[0, 5], Gen.Int[0, 1], (relation, at, span, property) => new TemporalQuery
    {
        Relation = relation switch { 0 => null, 1 => TimeRelation.Before, 2 => TimeRelation.After, _ => TimeRelation.Between },
        TimeAt = at,
        EndTimeAt = at.AddMinutes(span),
        Property = property == 0 ? TimeProperty.ObservedAt : TimeProperty.ModifiedAt,
    });

    [Fact]
    public void Folded_instances_merge_into_the_stored_rows_as_their_own_rows_would()
    {
        Gen.Select(Created, Stored, Query, Gen.Int[0, 15]).Sample((entity, stored, query, mask) =>
        {
            var attrs = mask == 0 ? null : Attributes.Where((_, i) => (mask & (1 << i)) != 0).Select(a => a.Name).ToList();
            const long Seq = 40;

            // What a row an instance held: the creation's rows (HistoryDiff), numbered seq << 16 | ordinal.
            var creation = HistoryDiff.Rows(null, entity, default)
                .Select((row, ordinal) => (Term(row.Attr), Time: Key(row.ObservedAt ?? row.At, row.At, query), N: (Seq << 16) | (long)ordinal, Id: TemporalHistory.InstanceId((Seq << 16) | (long)ordinal), row.Value));
            var later = stored.Select((row, i) => (Term: Attributes[row.Attribute].Term, Time: row.Time.UtcTicks, N: ((Seq + 1 + i) << 16), Id: TemporalHistory.InstanceId((Seq + 1 + i) << 16), Value: "0"));
            var expected = creation.Concat(later)
                .Where(row => (attrs is null || attrs.Contains(Name(row.Item1))) && query.Contains(new DateTimeOffset(row.Time, TimeSpan.Zero)))
                .OrderBy(row => row.Item1).ThenBy(row => row.Time).ThenBy(row => row.N)
                .Select(row => row.Id).ToList();

            // A reader: the stored rows as SQL gives them (filtered, in key order), the folded ones merged in.
            var unfolded = new UnfoldedInstances([(Seq << 16, EntityCodec.Encode(entity))], attrs, query, Term);
            var read = new List<string>();
            foreach (var row in later.Where(r => (attrs is null || attrs.Contains(Name(r.Term))) && query.Contains(new DateTimeOffset(r.Time, TimeSpan.Zero)))
                         .OrderBy(r => r.Term).ThenBy(r => r.Time).ThenBy(r => r.N))
            {
                unfolded.Before(row.Term, row.Time, row.N, h => read.Add(h.InstanceId));
                read.Add(row.Id);
            }

            unfolded.Rest(h => read.Add(h.InstanceId));
            Assert.Equal(expected, read);
        });
    }

    [Fact]
    public void A_folded_instance_reads_as_the_instance_it_was_created_as()
    {
        Created.Sample(entity =>
        {
            var unfolded = new UnfoldedInstances([(7L << 16, EntityCodec.Encode(entity))], null, new TemporalQuery(), Term);
            var read = new List<HistoryRow>();
            unfolded.Rest(read.Add);
            var written = entity.Attributes.SelectMany(a => a.Value.Select(i => (Name: a.Key, Instance: i))).ToList();
            Assert.Equal(written.Count, read.Count);
            foreach (var row in read)
            {
                var ordinal = int.Parse(row.InstanceId[(row.InstanceId.LastIndexOf('-') + 1)..], CultureInfo.InvariantCulture);
                var (name, instance) = written[ordinal];
                Assert.Equal(name, row.Attr);
                Assert.Equal(instance.DatasetId, row.DatasetId);
                Assert.Equal(instance.ModifiedAt, row.ModifiedAt);
                Assert.Equal(instance.ObservedAt, row.ObservedAt?.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                Assert.Equal(Convert.ToHexString(EntityCodec.EncodeInstance(instance)), Convert.ToHexString(EntityCodec.EncodeInstance(row.ToInstance())));
            }
        });
    }

    private static long Term(string name) => Attributes.Single(a => a.Name == name).Term;

    private static string Name(long term) => Attributes.Single(a => a.Term == term).Name;

    /// <summary>The time the query's property reads, in UTC ticks.</summary>
    private static long Key(long observedOrModified, long modified, TemporalQuery query) =>
        query.Property == TimeProperty.ModifiedAt ? modified : observedOrModified;
}
