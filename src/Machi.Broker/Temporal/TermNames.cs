namespace Machi.Broker.Temporal;

/// <summary>
/// The term ids and attribute names a history reader has looked up, both ways, for one request: stored rows name their
/// attribute by id, folded creations by name (<see cref="UnfoldedInstances"/> orders them by id), and each lookup
/// answers the other direction too.
/// </summary>
/// <param name="iriOf">The name of a term id (the reader's query).</param>
/// <param name="idOf">The id of a name, or null when no term has it (the reader's query).</param>
internal sealed class TermNames(Func<long, string> iriOf, Func<string, long?> idOf)
{
    private readonly Dictionary<long, string> _iris = [];
    private readonly Dictionary<string, long> _ids = new(StringComparer.Ordinal);

    /// <summary>The attribute name of a term id (one string per name for the whole request).</summary>
    public string Iri(long id)
    {
        if (!_iris.TryGetValue(id, out var iri))
        {
            _iris[id] = iri = iriOf(id);
            _ids[iri] = id;
        }

        return iri;
    }

    /// <summary>The term id of an attribute name; after every id when no term has it (it then sorts last).</summary>
    public long Id(string iri)
    {
        if (!_ids.TryGetValue(iri, out var id))
        {
            _ids[iri] = id = idOf(iri) ?? long.MaxValue;
            if (id != long.MaxValue)
            {
                _iris[id] = iri;
            }
        }

        return id;
    }
}
