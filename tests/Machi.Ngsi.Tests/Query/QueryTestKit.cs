using System.Text.Json;
using Machi.Ngsi.JsonLd;
using Machi.Ngsi.Model;
using Machi.Ngsi.Query;

namespace Machi.Ngsi.Tests.Query;

/// <summary>Entities parsed the way the broker parses them, and queries expanded with the same context.</summary>
internal static class QueryTestKit
{
    public static readonly DateTimeOffset Now = new(2026, 11, 25, 9, 0, 0, TimeSpan.Zero);

    public static Entity Entity(string json) =>
        EntityParser.ParseEntity(JsonDocument.Parse(json).RootElement, LdContext.Core, Now);

    public static string Expand(string term) => LdContext.Core.ExpandTerm(term);

    public static QExpression Q(string q) => QExpressions.Expand(QParser.Parse(q), Expand);

    public static bool Matches(Entity entity, string q) => QEvaluator.Matches(entity, Q(q));
}
