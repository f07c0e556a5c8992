using Machi.Broker.Storage.Postgres;

namespace Machi.Broker.Tests.Query;

/// <summary>
/// The share of candidates a PostgreSQL candidate statement keeps, learnt from the queries before, sizes the next
/// query's first chunk so that one statement usually fills the page.
/// </summary>
public sealed class CandidateSharesTests
{
    private const string TypeAndQ = "SELECT … entity_strings … EXISTS (SELECT 1 FROM entity_types …)";
    private const string Near = "SELECT … g.geog::geometry <-> …";

    [Fact]
    public void A_statement_that_kept_one_candidate_in_five_reads_five_times_a_page_at_once_and_others_one_page()
    {
        var shares = new CandidateShares();
        Assert.Equal(29, CandidateShares.Chunk(20, shares.Of(TypeAndQ), 16, 256));

        for (var i = 0; i < 20; i++)
        {
            shares.Learn(TypeAndQ, read: 130, matched: 26);
            shares.Learn(Near, read: 20, matched: 20);
        }

        Assert.Equal(0.2, shares.Of(TypeAndQ), 3);
        var chunk = CandidateShares.Chunk(20, shares.Of(TypeAndQ), 16, 256);
        Assert.InRange(chunk * shares.Of(TypeAndQ), 20, 30);
        Assert.Equal(29, CandidateShares.Chunk(20, shares.Of(Near), 16, 256));
    }

    [Fact]
    public void One_query_moves_the_share_part_way_and_a_chunk_too_small_to_tell_does_not_move_it()
    {
        var shares = new CandidateShares();
        shares.Learn(TypeAndQ, read: 100, matched: 20);
        Assert.Equal(0.2, shares.Of(TypeAndQ), 3);

        shares.Learn(TypeAndQ, read: 100, matched: 100);
        Assert.Equal(0.4, shares.Of(TypeAndQ), 3);

        shares.Learn(TypeAndQ, read: 10, matched: 0);
        Assert.Equal(0.4, shares.Of(TypeAndQ), 3);
    }

    [Fact]
    public void A_statement_that_matched_nothing_reads_the_largest_chunks()
    {
        var shares = new CandidateShares();
        shares.Learn(TypeAndQ, read: 256, matched: 0);
        Assert.Equal(256, CandidateShares.Chunk(20, shares.Of(TypeAndQ), 16, 256));
    }
}
