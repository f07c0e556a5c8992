using System.Text.Json;
using CsCheck;

namespace Machi.Ngsi.Tests;

/// <summary>
/// Shared texts (<see cref="JsonText"/>) are the texts the body holds: whatever names and values come, in whatever
/// order and however often, from several threads at once, including ones that share a slot of the table.
/// </summary>
public sealed class JsonTextTests
{
    // Short texts from a small alphabet (so they repeat and collide), escapes, non-ASCII, and longer than the table takes.
    private static readonly Gen<string> Text = Gen.OneOf(
        Gen.String[Gen.Char["aAé会\\\"/_:"], 0, 6],
        Gen.String[Gen.Char.AlphaNumeric, 60, 70],
        Gen.String);

    [Fact]
    public void Names_and_strings_read_through_the_table_are_the_bodys_own()
    {
        Gen.Select(Text, Text).Array[1, 40].Sample(pairs =>
        {
            var json = JsonSerializer.Serialize(pairs.Select(p => new Dictionary<string, string> { [p.Item1] = p.Item2 }));
            using var document = JsonDocument.Parse(json);
            Parallel.For(0, 4, _ =>
            {
                var i = 0;
                foreach (var element in document.RootElement.EnumerateArray())
                {
                    var member = element.EnumerateObject().Single();
                    Assert.Equal(pairs[i].Item1, JsonText.Name(member));
                    Assert.Equal(pairs[i].Item2, JsonText.String(member.Value));
                    i++;
                }
            });
        }, iter: 2_000);
    }
}
