using System.Globalization;
using CsCheck;
using Machi.Ngsi.Model;

namespace Machi.Ngsi.Tests.Model;

public class NgsiTextTests
{
    [Theory]
    [InlineData("2026-11-25T08:00:00Z", "2026-11-25T08:00:00Z")]
    [InlineData("2026-11-25T08:00:00.5Z", "2026-11-25T08:00:00.5Z")]
    [InlineData("2026-11-25T08:00:00.500Z", "2026-11-25T08:00:00.5Z")]
    [InlineData("2026-11-25T17:00:00+09:00", "2026-11-25T08:00:00Z")]
    [InlineData("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z")]
    [InlineData("2023-02-29T00:00:00Z", null)]
    [InlineData("2026-13-01T00:00:00Z", null)]
    [InlineData("2026-11-25T24:00:00Z", null)]
    [InlineData("2026-11-25 08:00:00Z", null)]
    [InlineData("2026-11-25T08:00:00", null)]
    [InlineData("yesterday", null)]
    public void Date_times_are_canonicalised_to_UTC_or_refused(string text, string? canonical) =>
        Assert.Equal(canonical, NgsiText.CanonicalDateTime(text));

    [Fact]
    public void Canonical_text_of_any_instant_is_kept_as_is()
    {
        Gen.Long[0, DateTime.MaxValue.Ticks].Sample(ticks =>
        {
            var text = NgsiText.FormatDateTime(new DateTimeOffset(ticks, TimeSpan.Zero));
            Assert.Equal(text, NgsiText.CanonicalDateTime(text));
        });
    }

    [Fact]
    public void The_fast_path_agrees_with_a_full_parse_on_near_miss_strings()
    {
        var digit = Gen.Char['0', '9'];
        var near = Gen.Select(Gen.Int[0, 9999], Gen.Int[0, 14], Gen.Int[0, 32], Gen.Int[0, 25], Gen.Int[0, 61], Gen.Int[0, 61], digit.Array[0, 8])
            .Select((y, mo, d, h, mi, s, frac) => $"{y:D4}-{mo:D2}-{d:D2}T{h:D2}:{mi:D2}:{s:D2}{(frac.Length > 0 ? "." + new string(frac) : string.Empty)}Z");
        near.Sample(text =>
        {
            // The framework's culture-aware parse, which the digit-by-digit reading of canonical text must agree with.
            var parsed = DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var full);
            Assert.Equal(parsed, NgsiText.TryParseDateTime(text, out var instant));
            Assert.Equal(parsed ? full.UtcTicks : 0, parsed ? instant.UtcTicks : 0);
            Assert.Equal(parsed ? NgsiText.FormatDateTime(full) : null, NgsiText.CanonicalDateTime(text));
        }, iter: 20_000);
    }
}
