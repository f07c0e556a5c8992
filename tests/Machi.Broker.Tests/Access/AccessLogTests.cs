using System.Text;
using System.Text.Json;
using Machi.Broker.Access;
using Machi.Broker.Tests.Infrastructure;

namespace Machi.Broker.Tests.Access;

/// <summary>
/// The access log keeps every record it acknowledged: records still staged in shared memory or in its journal when the
/// process dies are in the log after a restart, in order and verifiable; a record cut off by a crash in mid-write is
/// ignored; a record altered in the journal is reported by verification once it has been indexed. (The journal is
/// indexed only when read here, so the crash images hold their records staged or in the journal.)
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

    /// <summary>
    /// Copies the log's files as a crash would leave them: whatever is on the file system and in its staging file at
    /// this moment (taken while nothing is appended or written out); the log of the copy, not yet opened.
    /// </summary>
    private static SqliteAccessLog CrashImage(SqliteAccessLog log, string into)
    {
        Directory.CreateDirectory(into);
        var image = new SqliteAccessLog(Path.Combine(into, Path.GetFileName(log.Path)));
        log.WhileStill(() =>
        {
            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(log.Path)!))
            {
                Copy(file, Path.Combine(into, Path.GetFileName(file)));
            }

            Copy(log.StagingPath, image.StagingPath);
        });
        return image;
    }

    private static void Copy(string from, string to)
    {
        using var source = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = File.Create(to);
        source.CopyTo(copy);
    }

    [Fact]
    public async Task Records_acknowledged_before_a_crash_are_in_the_log_after_the_restart_and_verify()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var running = new SqliteAccessLog(Path.Combine(temp, "live", "access-log.db")) { IndexDelay = TimeSpan.FromHours(1) };
        Directory.CreateDirectory(Path.GetDirectoryName(running.Path)!);
        await running.AppendAsync([Record(1), Record(2)]);
        await Task.WhenAll(Enumerable.Range(3, 20).Select(i => running.AppendAsync([Record(i)])));
        running.WriteOutStaged();
        Assert.StartsWith("/dev/shm/", running.StagingPath, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(running.StagingPath)); // residents' data: not for other users
        }

        await Task.WhenAll(Enumerable.Range(23, 20).Select(i => running.AppendAsync([Record(i)])));
        var restarted = CrashImage(running, Path.Combine(temp, "crashed"));

        // The first 22 records were written out to the journal; the others are still staged in shared memory, which
        // outlives the process (unless the flusher wrote them out too meanwhile).
        var journal = Path.ChangeExtension(restarted.Path, ".journal") + ".0";
        var written = await File.ReadAllBytesAsync(journal);
        var staged = AccessLogStaging.Read(restarted.StagingPath);
        Assert.Equal(Enumerable.Range(1, 42).Select(i => (long)i),
            AccessLogJournal.Entries(written).Concat(AccessLogJournal.Entries(staged)).Select(e => e.Seq).Order());

        // A copy the crash cut short (the first bytes of a record after the staged ones): not a record, not acknowledged.
        var file = await File.ReadAllBytesAsync(restarted.StagingPath);
        var end = AccessLogStaging.HeaderLength + staged.AsSpan().IndexOf(new byte[AccessLogJournal.HeaderLength]);
        written.AsSpan(0, 60).CopyTo(file.AsSpan(end));
        await File.WriteAllBytesAsync(restarted.StagingPath, file);

        await using (restarted)
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

        // A log closed with nothing left staged leaves no file in shared memory.
        Assert.False(File.Exists(restarted.StagingPath));
        await running.DisposeAsync();
        Assert.False(File.Exists(running.StagingPath));
    }

    [Fact]
    public void Staging_files_of_data_directories_that_are_gone_are_deleted_and_the_others_kept()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var kept = AccessLogStaging.PathFor(Path.Combine(temp, "access-log.journal"));
        var orphan = AccessLogStaging.PathFor(Path.Combine(temp, "removed", "access-log.journal"));
        new AccessLogStaging(kept, Path.Combine(temp, "access-log.journal")).Dispose();
        new AccessLogStaging(orphan, Path.Combine(temp, "removed", "access-log.journal")).Dispose();
        try
        {
            AccessLogStaging.DeleteOrphans();
            Assert.True(File.Exists(kept));
            Assert.False(File.Exists(orphan));
        }
        finally
        {
            File.Delete(kept);
            File.Delete(orphan);
        }
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

        // Every record is in the compact indexes (batches insert them many rows at a time), in order.
        foreach (var resident in (string[])["resident-0", "resident-1", "resident-2"])
        {
            var own = entries.Where(e => e.Record!.Resident == resident).Select(e => e.Seq).Reverse();
            Assert.Equal(own, (await log.ReadAsync(resident: resident, limit: 100_000)).Select(e => e.Seq));
        }

        Assert.Equal(expected, (await log.ReadAsync(clientId: "clinic", limit: 100_000)).Count);
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
        running.WriteOutStaged();
        var restarted = CrashImage(running, Path.Combine(temp, "crashed"));
        await running.DisposeAsync();

        // Rewritten by someone who knows the journal's format (its checksums fit), keeping the digests and hashes.
        var journal = Path.ChangeExtension(restarted.Path, ".journal") + ".0";
        var entries = AccessLogJournal.Entries(await File.ReadAllBytesAsync(journal));
        Assert.Equal([1L, 2L, 3L], entries.Select(e => e.Seq));
        entries[0] = entries[0] with { Record = entries[0].Record! with { ClientId = "someone-innocent" } };
        await File.WriteAllBytesAsync(journal, Framed(entries));
        await using var opened = restarted;
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
        running.WriteOutStaged();
        var restarted = CrashImage(running, Path.Combine(temp, "crashed"));
        await running.DisposeAsync();

        // The same length, another client: the record's checksum no longer fits, so it is not read as a record.
        var journal = Path.ChangeExtension(restarted.Path, ".journal") + ".0";
        var bytes = await File.ReadAllBytesAsync(journal);
        var at = bytes.AsSpan().IndexOf("clinic"u8);
        "clinix"u8.CopyTo(bytes.AsSpan(at));
        await File.WriteAllBytesAsync(journal, bytes);
        await using var opened = restarted;
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
            log.WriteOutStaged();
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

    /// <summary>
    /// Writes a table in the column format the log used before it stored records whole (a column per field, digest and
    /// hash as hex), holding records 1–30 with record 3 redacted, and the indexes of that time: compact ones, or before
    /// them an index on each text column.
    /// </summary>
    private static void WriteColumnFormat(string path, bool compactIndexes)
    {
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            CREATE TABLE access_log (seq INTEGER PRIMARY KEY, at INTEGER, resident TEXT, client_id TEXT, subject TEXT, purpose TEXT,
                emergency_reason TEXT, operation TEXT, tenant TEXT, entity_id TEXT, attributes TEXT, node TEXT,
                redacted INTEGER NOT NULL DEFAULT 0, digest TEXT NOT NULL, hash TEXT NOT NULL);
            """;
        cmd.ExecuteNonQuery();
        var hash = AccessLogChain.Start();
        for (var seq = 1; seq <= 30; seq++)
        {
            var record = Record(seq);
            var digest = AccessLogChain.Digest(seq, record);
            hash = AccessLogChain.Chain(hash, digest);
            cmd.CommandText = """
                INSERT INTO access_log (seq, at, resident, client_id, subject, purpose, emergency_reason, operation, tenant, entity_id, attributes, node, digest, hash)
                VALUES ($seq, $at, $resident, $client, NULL, $purpose, NULL, $operation, $tenant, $entity, NULL, $node, $digest, $hash)
                """;
            cmd.Parameters.Clear();
            cmd.Parameters.AddWithValue("$seq", seq);
            cmd.Parameters.AddWithValue("$at", record.At.UtcTicks);
            cmd.Parameters.AddWithValue("$resident", record.Resident);
            cmd.Parameters.AddWithValue("$client", record.ClientId);
            cmd.Parameters.AddWithValue("$purpose", record.Purpose);
            cmd.Parameters.AddWithValue("$operation", record.Operation);
            cmd.Parameters.AddWithValue("$tenant", record.Tenant);
            cmd.Parameters.AddWithValue("$entity", record.EntityId);
            cmd.Parameters.AddWithValue("$node", record.Node);
            cmd.Parameters.AddWithValue("$digest", Convert.ToHexStringLower(digest));
            cmd.Parameters.AddWithValue("$hash", Convert.ToHexStringLower(hash));
            cmd.ExecuteNonQuery();
        }

        cmd.Parameters.Clear();
        cmd.CommandText = compactIndexes
            ? """
                CREATE TABLE access_log_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
                CREATE TABLE access_log_by_resident (resident INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (resident, seq)) WITHOUT ROWID;
                CREATE TABLE access_log_by_client (client INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (client, seq)) WITHOUT ROWID;
                INSERT INTO access_log_names (name) SELECT DISTINCT resident FROM access_log UNION SELECT DISTINCT client_id FROM access_log;
                INSERT INTO access_log_by_resident SELECT n.id, a.seq FROM access_log a JOIN access_log_names n ON n.name = a.resident WHERE a.seq <> 3;
                INSERT INTO access_log_by_client SELECT n.id, a.seq FROM access_log a JOIN access_log_names n ON n.name = a.client_id;
                """
            : "CREATE INDEX access_log_resident ON access_log (resident, seq); CREATE INDEX access_log_client ON access_log (client_id, seq);";
        cmd.ExecuteNonQuery();
        cmd.CommandText = """
            UPDATE access_log SET resident = NULL, client_id = NULL, purpose = NULL, operation = NULL, tenant = NULL, entity_id = NULL, node = NULL, redacted = 1
            WHERE seq = 3
            """;
        cmd.ExecuteNonQuery();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_log_written_in_the_column_format_is_converted_verifies_and_is_read_by_resident_and_client_and_erasure_hides_the_resident(bool compactIndexes)
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var path = Path.Combine(temp, "access-log.db");
        WriteColumnFormat(path, compactIndexes);

        // Verification alone (machi audit verify) opens the log: it is converted then, redacted record included.
        await using (var verifying = new SqliteAccessLog(path))
        {
            var converted = await verifying.VerifyAsync();
            Assert.True(converted.Intact, converted.Problem);
            Assert.Equal((30, 1), (converted.Records, converted.Redacted));
        }

        await using var after = new SqliteAccessLog(path);
        var residentOne = await after.ReadAsync(resident: "resident-1", limit: 100);
        Assert.Equal(Enumerable.Range(0, 10).Select(k => 28L - (3 * k)), residentOne.Select(e => e.Seq)); // newest first
        Assert.All(residentOne, e => Assert.Equal("resident-1", e.Record!.Resident));
        Assert.Equal(Record(28), residentOne[0].Record);
        Assert.Equal([28L, 25L], (await after.ReadAsync(resident: "resident-1", limit: 2)).Select(e => e.Seq));
        Assert.Equal([22L, 19L], (await after.ReadAsync(resident: "resident-1", limit: 2, offset: 2)).Select(e => e.Seq));
        Assert.Equal(29, (await after.ReadAsync(clientId: "clinic", limit: 100)).Count); // not the redacted one
        Assert.Equal(9, (await after.ReadAsync(resident: "resident-0", clientId: "clinic", limit: 100)).Count);
        Assert.Empty(await after.ReadAsync(resident: "resident-0", clientId: "someone-else", limit: 100));
        Assert.Empty(await after.ReadAsync(clientId: "someone-else", limit: 100));
        Assert.Null((await after.ReadAsync(limit: 100, newestFirst: false))[2].Record);

        // Records appended after the upgrade are listed too, and erasure takes the resident's records out of both.
        await after.AppendAsync([Record(31), Record(34)]);
        Assert.Equal(12, (await after.ReadAsync(resident: "resident-1", limit: 100)).Count);
        Assert.Equal(12, await after.RedactAsync("resident-1", Record(34) with { Operation = "erasure" }));
        Assert.Equal(["erasure"], (await after.ReadAsync(resident: "resident-1", limit: 100)).Select(e => e.Record!.Operation));
        Assert.Equal(20, (await after.ReadAsync(clientId: "clinic", limit: 100)).Count); // 19 of the others, the erasure
        var verification = await after.VerifyAsync();
        Assert.True(verification.Intact, verification.Problem);
        Assert.Equal((33, 13), (verification.Records, verification.Redacted)); // record 3 was redacted before

        using var check = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false");
        check.Open();
        using var tables = check.CreateCommand();
        tables.CommandText = "SELECT count(*) FROM sqlite_master WHERE name IN ('access_log_resident', 'access_log_client', 'access_log_columns')";
        Assert.Equal(0L, tables.ExecuteScalar());
    }

    [Fact]
    public async Task Erasure_leaves_only_digest_and_hash_in_the_table_and_the_chain_still_verifies()
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var path = Path.Combine(temp, "access-log.db");
        await using var log = new SqliteAccessLog(path);
        await log.AppendAsync([.. Enumerable.Range(1, 9).Select(Record)]);
        Assert.Equal(3, await log.RedactAsync("resident-1", Record(10) with { Operation = "erasure" }));

        Assert.Equal([7L, 4L, 1L], (await log.ReadAsync(limit: 100)).Where(e => e.Record is null).Select(e => e.Seq));
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false"))
        {
            db.Open();
            using var rows = db.CreateCommand();
            rows.CommandText = "SELECT seq, record FROM access_log WHERE seq IN (1, 2)";
            using var r = rows.ExecuteReader();
            Assert.True(r.Read());
            var redacted = r.GetFieldValue<byte[]>(1);
            Assert.Equal(64, redacted.Length);
            Assert.Equal(-1, redacted.AsSpan().IndexOf("resident-1"u8));
            Assert.True(r.Read());
            Assert.NotEqual(-1, r.GetFieldValue<byte[]>(1).AsSpan().IndexOf("resident-2"u8));
        }

        var verification = await log.VerifyAsync();
        Assert.True(verification.Intact, verification.Problem);
        Assert.Equal((10, 3), (verification.Records, verification.Redacted));
    }

    [Theory]
    [InlineData("another client")]
    [InlineData("bytes that are not a record")]
    public async Task A_record_altered_in_the_table_is_reported_by_verification(string alteration)
    {
        var temp = TempDirectory.Create();
        using var cleanup = new Cleanup(temp);
        var path = Path.Combine(temp, "access-log.db");
        await using (var log = new SqliteAccessLog(path))
        {
            await log.AppendAsync([.. Enumerable.Range(1, 5).Select(Record)]);
            Assert.Equal(5, (await log.ReadAsync(limit: 100)).Count); // indexed
        }

        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=false"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "SELECT record FROM access_log WHERE seq = 2";
            var record = (byte[])cmd.ExecuteScalar()!;
            if (alteration == "another client")
            {
                // Same length, digest and hash kept: only recomputing the digest shows it.
                "clinix"u8.CopyTo(record.AsSpan(record.AsSpan().IndexOf("clinic"u8)));
            }
            else
            {
                record = [.. record.AsSpan(0, 20), .. record.AsSpan(record.Length - 64)];
            }

            cmd.CommandText = "UPDATE access_log SET record = $record WHERE seq = 2";
            cmd.Parameters.AddWithValue("$record", record);
            cmd.ExecuteNonQuery();
        }

        await using var reopened = new SqliteAccessLog(path);
        var verification = await reopened.VerifyAsync();
        Assert.False(verification.Intact);
        Assert.Equal(2, verification.FirstBrokenSeq);
        Assert.Contains("altered", verification.Problem, StringComparison.Ordinal);
    }
}
