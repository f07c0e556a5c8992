using System.Text;
using System.Text.Json;
using Machi.Broker.Access;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Access;

/// <summary>
/// The access log keeps every record it acknowledged: records still in its journal when the process dies are in the
/// log after a restart, in order and verifiable; a record cut off by a crash in mid-write is ignored; a record
/// altered in the journal is reported by verification once it has been indexed. (The journal is indexed only when
/// read here, so the crash images hold their records in the journal.)
/// </summary>
public sealed class AccessLogTests
{
    private static AccessRecord Record(int i) => new(
        DateTimeOffset.UnixEpoch.AddSeconds(1_800_000_000 + i), "resident-" + (i % 3), "clinic", null, "monitoring", null, "read", "",
        $"urn:ngsi-ld:BloodPressureObservation:{i}", null, "node-a");

    private sealed class Cleanup(string path) : IDisposable
    {
        public void Dispose() => TempDirectory.Delete(path);
    }

    /// <summary>Copies the log's files as a crash would leave them: whatever is on the file system at this moment.</summary>
    private static string CrashImage(SqliteAccessLog log, string into)
    {
        Directory.CreateDirectory(into);
        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(log.Path)!))
        {
            using var source = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var copy = File.Create(Path.Combine(into, Path.GetFileName(file)));
            source.CopyTo(copy);
        }

        return Path.Combine(into, Path.GetFileName(log.Path));
    }

    [Fact]
    public async Task Records_acknowledged_before_a_crash_are_in_the_log_after_the_restart_and_verify()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var running = new SqliteAccessLog(Path.Combine(temp, "live", "access-log.db")) { IndexDelay = TimeSpan.FromHours(1) };
        Directory.CreateDirectory(Path.GetDirectoryName(running.Path)!);
        await running.AppendAsync([Record(1), Record(2)]);
        await Task.WhenAll(Enumerable.Range(3, 40).Select(i => running.AppendAsync([Record(i)])));
        var image = CrashImage(running, Path.Combine(temp, "crashed"));

        // A write the crash cut short (the first bytes of a record): not a record, not acknowledged.
        var journal = Path.ChangeExtension(image, ".journal") + ".0";
        var written = await File.ReadAllBytesAsync(journal);
        await using (var append = new FileStream(journal, FileMode.Append))
        {
            append.Write(written.AsSpan(0, 60));
        }

        await using (var restarted = new SqliteAccessLog(image))
        {
            var entries = await restarted.ReadAsync(limit: 1000, newestFirst: false);
            Assert.Equal(Enumerable.Range(1, 42).Select(i => (long)i), entries.Select(e => e.Seq));
            Assert.Equal(42, entries.Select(e => e.Record!.EntityId).Distinct().Count());
            Assert.Equal(14, (await restarted.ReadAsync(resident: "resident-0", limit: 1000)).Count);
            await restarted.AppendAsync([Record(100)]);
            var verification = await restarted.VerifyAsync();
            Assert.True(verification.Intact, verification.Problem);
            Assert.Equal(43, verification.Records);
        }

        await running.DisposeAsync();
    }

    [Fact]
    public async Task Records_appended_by_many_requests_at_once_form_one_unbroken_chain_while_being_indexed()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        Directory.CreateDirectory(Path.Combine(temp, "live"));
        await using var log = new SqliteAccessLog(Path.Combine(temp, "live", "access-log.db")) { IndexDelay = TimeSpan.FromMilliseconds(1) };

        // 8 threads × 200 appends of 1–3 records, the indexer moving journal segments into the table meanwhile.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(async () =>
        {
            for (var i = 0; i < 200; i++)
            {
                await log.AppendAsync([.. Enumerable.Range(0, 1 + (i % 3)).Select(k => Record((t * 10_000) + (i * 3) + k))]);
            }
        })));

        var expected = 8 * Enumerable.Range(0, 200).Sum(i => 1 + (i % 3));
        var entries = await log.ReadAsync(limit: 100_000, newestFirst: false);
        Assert.Equal(Enumerable.Range(1, expected).Select(i => (long)i), entries.Select(e => e.Seq));
        Assert.Equal(expected, entries.Select(e => e.Record!.EntityId).Distinct().Count());
        var verification = await log.VerifyAsync();
        Assert.True(verification.Intact, verification.Problem);
        Assert.Equal(expected, verification.Records);
    }

    [Fact]
    public async Task A_record_altered_in_the_journal_is_reported_once_indexed()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var running = new SqliteAccessLog(Path.Combine(temp, "live", "access-log.db")) { IndexDelay = TimeSpan.FromHours(1) };
        Directory.CreateDirectory(Path.GetDirectoryName(running.Path)!);
        await running.AppendAsync([Record(1), Record(2), Record(3)]);
        var image = CrashImage(running, Path.Combine(temp, "crashed"));
        await running.DisposeAsync();

        // Rewritten by someone who knows the journal's format (its checksums fit), keeping the digests and hashes.
        var journal = Path.ChangeExtension(image, ".journal") + ".0";
        var entries = AccessLogJournal.Entries(await File.ReadAllBytesAsync(journal));
        Assert.Equal([1L, 2L, 3L], entries.Select(e => e.Seq));
        entries[0] = entries[0] with { Record = entries[0].Record! with { ClientId = "someone-innocent" } };
        await File.WriteAllBytesAsync(journal, Framed(entries));
        await using var restarted = new SqliteAccessLog(image);
        Assert.Equal(3, (await restarted.ReadAsync(limit: 10)).Count);
        var verification = await restarted.VerifyAsync();
        Assert.False(verification.Intact);
        Assert.Equal(1, verification.FirstBrokenSeq);
        Assert.Contains("altered", verification.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_record_whose_bytes_were_changed_in_the_journal_is_reported_missing_once_indexed()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var running = new SqliteAccessLog(Path.Combine(temp, "live", "access-log.db")) { IndexDelay = TimeSpan.FromHours(1) };
        Directory.CreateDirectory(Path.GetDirectoryName(running.Path)!);
        await running.AppendAsync([Record(1), Record(2), Record(3)]);
        var image = CrashImage(running, Path.Combine(temp, "crashed"));
        await running.DisposeAsync();

        // The same length, another client: the record's checksum no longer fits, so it is not read as a record.
        var journal = Path.ChangeExtension(image, ".journal") + ".0";
        var bytes = await File.ReadAllBytesAsync(journal);
        var at = bytes.AsSpan().IndexOf("clinic"u8);
        "clinix"u8.CopyTo(bytes.AsSpan(at));
        await File.WriteAllBytesAsync(journal, bytes);
        await using var restarted = new SqliteAccessLog(image);
        Assert.Equal([3L, 2L], (await restarted.ReadAsync(limit: 10)).Select(e => e.Seq));
        var verification = await restarted.VerifyAsync();
        Assert.False(verification.Intact);
        Assert.Equal(1, verification.FirstBrokenSeq);
    }

    [Fact]
    public async Task A_journal_written_in_the_older_json_format_is_indexed_at_start_up_and_the_chain_goes_on()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var path = Path.Combine(temp, "access-log.db");

        // What the log wrote before the binary journal: one JSON entry a line, the last one cut by a crash.
        var hash = AccessLogChain.Start();
        var lines = new StringBuilder();
        for (var seq = 1; seq <= 5; seq++)
        {
            var digest = AccessLogChain.Digest(seq, Record(seq));
            hash = AccessLogChain.Chain(hash, digest);
            var entry = new AccessLogEntry(seq, Record(seq), Convert.ToHexStringLower(digest), Convert.ToHexStringLower(hash));
            lines.Append(JsonSerializer.Serialize(entry, JournalJson.Default.AccessLogEntry)).Append('\n');
        }

        lines.Append("{\"Seq\":6,\"Record\":{\"At\":\"2027-01-");
        await File.WriteAllTextAsync(Path.ChangeExtension(path, ".journal") + ".0", lines.ToString());

        await using (var log = new SqliteAccessLog(path))
        {
            Assert.Equal([1L, 2L, 3L, 4L, 5L], (await log.ReadAsync(limit: 100, newestFirst: false)).Select(e => e.Seq));
            Assert.Equal(2, (await log.ReadAsync(resident: "resident-1", limit: 100)).Count);
            await log.AppendAsync([Record(6), Record(7)]);
            var journal = await File.ReadAllBytesAsync(Path.ChangeExtension(path, ".journal") + ".0");
            Assert.Equal([6L, 7L], AccessLogJournal.Entries(journal).Select(e => e.Seq)); // in the binary format
            Assert.NotEqual((byte)'{', journal[0]);
        }

        // Reopened, the log reads the records of both formats as one chain.
        await using var reopened = new SqliteAccessLog(path);
        Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), (await reopened.ReadAsync(limit: 100, newestFirst: false)).Select(e => e.Seq));
        var verification = await reopened.VerifyAsync();
        Assert.True(verification.Intact, verification.Problem);
        Assert.Equal(7, verification.Records);
    }

    private static byte[] Framed(IEnumerable<AccessLogEntry> entries)
    {
        var list = entries.ToList();
        var bytes = new byte[list.Sum(e => AccessLogJournal.MaxLength(e.Record!))];
        var length = 0;
        foreach (var entry in list)
        {
            length += AccessLogJournal.Frame(entry, bytes.AsSpan(length));
        }

        return bytes[..length];
    }

    [Fact]
    public async Task A_log_written_with_the_older_text_indexes_is_read_by_resident_and_client_after_the_upgrade_and_erasure_hides_the_resident()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var path = Path.Combine(temp, "access-log.db");
        await using (var before = new SqliteAccessLog(path))
        {
            await before.AppendAsync([.. Enumerable.Range(1, 30).Select(Record)]);
            Assert.Equal(10, (await before.ReadAsync(resident: "resident-1", limit: 100)).Count); // indexes everything
        }

        // The shape a log had before the compact indexes: only the two indexes on the text columns.
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false"))
        {
            db.Open();
            using var downgrade = db.CreateCommand();
            downgrade.CommandText = """
                DROP TABLE access_log_by_resident; DROP TABLE access_log_by_client; DROP TABLE access_log_names;
                CREATE INDEX access_log_resident ON access_log (resident, seq); CREATE INDEX access_log_client ON access_log (client_id, seq);
                """;
            downgrade.ExecuteNonQuery();
        }

        await using var after = new SqliteAccessLog(path);
        var residentOne = await after.ReadAsync(resident: "resident-1", limit: 100);
        Assert.Equal(Enumerable.Range(0, 10).Select(k => 28L - (3 * k)), residentOne.Select(e => e.Seq)); // newest first
        Assert.All(residentOne, e => Assert.Equal("resident-1", e.Record!.Resident));
        Assert.Equal([28L, 25L], (await after.ReadAsync(resident: "resident-1", limit: 2)).Select(e => e.Seq));
        Assert.Equal([22L, 19L], (await after.ReadAsync(resident: "resident-1", limit: 2, offset: 2)).Select(e => e.Seq));
        Assert.Equal(30, (await after.ReadAsync(clientId: "clinic", limit: 100)).Count);
        Assert.Empty(await after.ReadAsync(clientId: "someone-else", limit: 100));

        // Records appended after the upgrade are listed too, and erasure takes the resident's records out of both.
        await after.AppendAsync([Record(31), Record(34)]);
        Assert.Equal(12, (await after.ReadAsync(resident: "resident-1", limit: 100)).Count);
        Assert.Equal(12, await after.RedactAsync("resident-1", Record(34) with { Operation = "erasure" }));
        Assert.Equal(["erasure"], (await after.ReadAsync(resident: "resident-1", limit: 100)).Select(e => e.Record!.Operation));
        Assert.Equal(21, (await after.ReadAsync(clientId: "clinic", limit: 100)).Count); // 20 of the others, the erasure
        var verification = await after.VerifyAsync();
        Assert.True(verification.Intact, verification.Problem);
        Assert.Equal(33, verification.Records);

        using var check = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false");
        check.Open();
        using var indexes = check.CreateCommand();
        indexes.CommandText = "SELECT count(*) FROM sqlite_master WHERE name IN ('access_log_resident', 'access_log_client')";
        Assert.Equal(0L, indexes.ExecuteScalar());
    }
}
