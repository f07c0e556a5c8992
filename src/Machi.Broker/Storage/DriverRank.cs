namespace Machi.Broker.Storage;

/// <summary>
/// Which indexable condition of a query drives it (the lowest rank present), the same on both backends: the
/// conditions that usually admit the fewest candidates first — named ids, q equality, geo, q ranges, attribute names,
/// types.
/// </summary>
internal enum DriverRank
{
    Ids,
    Equality,
    Geo,
    Range,
    Attributes,
    Types,
}
