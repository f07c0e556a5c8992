using System.Text.Json;
using Machi.Ngsi.Model;

namespace Machi.Broker.Temporal;

/// <summary>One entity's history as the temporal API returns it: instances, or (aggregatedValues) their aggregation.</summary>
internal sealed record TemporalEntity(TemporalEntityRow Entity, List<HistoryRow> Rows, List<AggregatedSeries>? Aggregated)
{
    public bool IsEmpty => Aggregated is { } aggregated ? aggregated.Count == 0 : Rows.Count == 0;
}

/// <summary>
/// Writes temporal entities (clause 4.5.7 normalized, 4.5.9 temporalValues, 4.5.19 aggregated), compacting names
/// with the request's @context. Attribute instances are grouped by attribute and, within one, by datasetId.
/// </summary>
internal static class TemporalRenderer
{
    public static void WriteEntities(Utf8JsonWriter w, IEnumerable<TemporalEntity> entities, TemporalQuery query, RenderOptions render)
    {
        w.WriteStartArray();
        foreach (var entity in entities)
        {
            WriteEntity(w, entity, query, render);
        }

        w.WriteEndArray();
    }

    public static void WriteEntity(Utf8JsonWriter w, TemporalEntity temporal, TemporalQuery query, RenderOptions render)
    {
        var ctx = render.Context;
        var entity = temporal.Entity;
        w.WriteStartObject();
        if (render.Shows(Projection.Id))
        {
            w.WriteString("id", entity.Id);
        }

        if (render.Shows(Projection.Type))
        {
            EntityRenderer.WriteTypes(w, "type", entity.Types, ctx);
        }

        if (render.SysAttrs)
        {
            w.WriteString("createdAt", NgsiText.FormatDateTime(entity.CreatedAt));
            w.WriteString("modifiedAt", NgsiText.FormatDateTime(entity.ModifiedAt));
            if (entity.DeletedAt is { } deletedAt)
            {
                w.WriteString("deletedAt", NgsiText.FormatDateTime(deletedAt));
            }
        }

        if (temporal.Aggregated is { } aggregated)
        {
            foreach (var attribute in aggregated.GroupBy(s => s.Attr, StringComparer.Ordinal))
            {
                if (render.Shows(attribute.Key))
                {
                    w.WritePropertyName(ctx.CompactIri(attribute.Key));
                    WriteSeries(w, attribute.ToList(), s => WriteAggregated(w, s, query));
                }
            }
        }

        foreach (var attribute in temporal.Rows.GroupBy(r => r.Attr, StringComparer.Ordinal))
        {
            if (!render.Shows(attribute.Key))
            {
                continue;
            }

            var series = attribute.GroupBy(r => r.DatasetId).Select(g => g.ToList()).ToList();
            w.WritePropertyName(ctx.CompactIri(attribute.Key));
            switch (query.Format)
            {
                case TemporalFormat.Normalized:
                    w.WriteStartArray();
                    foreach (var row in series.SelectMany(s => s).OrderBy(r => r.Time(query.Property)))
                    {
                        WriteInstance(w, row, render);
                    }

                    w.WriteEndArray();
                    break;
                default:
                    WriteSeries(w, series, s => WriteValues(w, s, query, render));
                    break;
            }
        }

        if (render.IncludeContext)
        {
            EntityRenderer.WriteContext(w, ctx);
        }

        w.WriteEndObject();
    }

    /// <summary>One object per datasetId: alone when there is one, else an array of them.</summary>
    private static void WriteSeries<T>(Utf8JsonWriter w, List<T> series, Action<T> write)
    {
        if (series.Count == 1)
        {
            write(series[0]);
            return;
        }

        w.WriteStartArray();
        foreach (var s in series)
        {
            write(s);
        }

        w.WriteEndArray();
    }

    private static void WriteInstance(Utf8JsonWriter w, HistoryRow row, RenderOptions render)
    {
        var instance = row.ToInstance();
        EntityRenderer.WriteInstance(w, instance, render with { Format = Representation.Normalized }, extra =>
        {
            extra.WriteString("instanceId", row.InstanceId);
            if (row.Deleted)
            {
                extra.WriteString("deletedAt", NgsiText.FormatDateTime(row.ModifiedAt));
            }
        });
    }

    /// <summary>temporalValues (clause 4.5.9): {"type", "values": [[value, time], …]} (objects, languageMaps, … by kind).</summary>
    private static void WriteValues(Utf8JsonWriter w, List<HistoryRow> series, TemporalQuery query, RenderOptions render)
    {
        var first = series[0];
        w.WriteStartObject();
        w.WriteString("type", AttributeKinds.Name(first.Kind));
        w.WriteStartArray(ValuesMember(first.Kind));
        foreach (var row in series)
        {
            w.WriteStartArray();
            EntityRenderer.WritePayload(w, row.ToInstance(), render.Context);
            w.WriteStringValue(NgsiText.FormatDateTime(row.Time(query.Property)));
            w.WriteEndArray();
        }

        w.WriteEndArray();
        if (first.DatasetId is { } datasetId)
        {
            w.WriteString("datasetId", datasetId);
        }

        w.WriteEndObject();
    }

    private static string ValuesMember(AttributeKind kind) => kind switch
    {
        AttributeKind.Relationship => "objects",
        AttributeKind.LanguageProperty => "languageMaps",
        AttributeKind.VocabProperty => "vocabs",
        AttributeKind.JsonProperty => "jsons",
        AttributeKind.ListProperty => "valueLists",
        AttributeKind.ListRelationship => "objectLists",
        _ => "values",
    };

    /// <summary>Aggregated (clause 4.5.19): per method, [[result, startAt, endAt], …] over the periods that hold instances.</summary>
    private static void WriteAggregated(Utf8JsonWriter w, AggregatedSeries series, TemporalQuery query)
    {
        w.WriteStartObject();
        w.WriteString("type", AttributeKinds.Name(series.Kind));
        foreach (var method in query.Methods)
        {
            w.WriteStartArray(Aggregation.Name(method));
            foreach (var period in series.Periods)
            {
                w.WriteStartArray();
                Aggregation.Write(w, method, period);
                w.WriteStringValue(NgsiText.FormatDateTime(period.Start));
                w.WriteStringValue(NgsiText.FormatDateTime(period.End));
                w.WriteEndArray();
            }

            w.WriteEndArray();
        }

        if (series.DatasetId is { } datasetId)
        {
            w.WriteString("datasetId", datasetId);
        }

        w.WriteEndObject();
    }
}
