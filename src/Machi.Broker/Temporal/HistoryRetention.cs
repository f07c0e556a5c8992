using System.Text.Json;
using Machi.Broker.Storage;
using Machi.Ngsi.JsonLd;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Machi.Broker.Temporal;

/// <summary>
/// Deletes history instances older than their retention (Broker:HistoryRetention), every
/// Broker:HistoryCompactionInterval and once shortly after start. An entity loses instances only when every one of
/// its types has a rule (a rule for its own tenant beats one for every tenant; of several types, the longest
/// retention wins); without a rule nothing is ever deleted. Deletion goes
/// a few entities at a time, so writes go on between the steps.
/// </summary>
internal sealed class HistoryRetention(IStoreMaintenance store, IOptions<BrokerOptions> options, TimeProvider time, ILogger<HistoryRetention> logger)
    : BackgroundService
{
    private const int EntitiesPerStep = 64;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.HistoryRetention.Count == 0)
        {
            return;
        }

        var interval = options.Value.HistoryCompactionInterval > TimeSpan.Zero ? options.Value.HistoryCompactionInterval : TimeSpan.FromHours(1);
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(10), time, stoppingToken).ConfigureAwait(false);
            using var timer = new PeriodicTimer(interval, time);
            do
            {
                try
                {
                    var deleted = await CompactAsync(stoppingToken).ConfigureAwait(false);
                    if (deleted > 0)
                    {
                        logger.LogInformation("History retention deleted {Count} instances", deleted);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogError(ex, "Applying the history retention failed; trying again later");
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Deletes every instance past its retention now; the number deleted.</summary>
    public async Task<long> CompactAsync(CancellationToken cancellationToken)
    {
        var rules = Rules();
        if (rules.Count == 0)
        {
            return 0;
        }

        var now = time.GetUtcNow();
        var cutoffs = Cutoffs(await store.HistoryEntitiesAsync(cancellationToken).ConfigureAwait(false), rules, now);
        var deleted = 0L;
        for (var i = 0; i < cutoffs.Count; i += EntitiesPerStep)
        {
            var step = cutoffs.GetRange(i, Math.Min(EntitiesPerStep, cutoffs.Count - i));
            deleted += await store.DeleteHistoryBeforeAsync(step, cancellationToken).ConfigureAwait(false);
        }

        return deleted;
    }

    /// <summary>The rules with their types expanded; a rule without a type or a positive duration is reported and skipped.</summary>
    private List<(string Type, string? Tenant, TimeSpan Keep)> Rules()
    {
        var rules = new List<(string, string?, TimeSpan)>();
        foreach (var rule in options.Value.HistoryRetention)
        {
            if (string.IsNullOrWhiteSpace(rule.Type) || rule.Keep <= TimeSpan.Zero)
            {
                logger.LogError("Ignoring the history retention rule for type '{Type}': it needs a type and a positive Keep", rule.Type);
                continue;
            }

            rules.Add((LdContext.Core.ExpandTerm(rule.Type), rule.Tenant, rule.Keep));
        }

        return rules;
    }

    /// <summary>Each entity whose every type has a rule, with the cutoff of its longest one (UTC ticks).</summary>
    private static List<(long Hid, string Tenant, long Cutoff)> Cutoffs(List<(long Hid, string Tenant, string Types)> entities, List<(string Type, string? Tenant, TimeSpan Keep)> rules, DateTimeOffset now)
    {
        var cutoffs = new List<(long, string, long)>();
        foreach (var (hid, tenant, typesJson) in entities)
        {
            var types = JsonSerializer.Deserialize<List<string>>(typesJson) ?? [];
            TimeSpan? keep = null;
            foreach (var type in types)
            {
                // A rule for the entity's own tenant beats one for every tenant.
                TimeSpan? longest = null;
                var specific = false;
                foreach (var rule in rules)
                {
                    if (rule.Type != type || (rule.Tenant is not null && rule.Tenant != tenant))
                    {
                        continue;
                    }

                    var ownTenant = rule.Tenant is not null;
                    if (longest is null || (ownTenant && !specific) || (ownTenant == specific && rule.Keep > longest))
                    {
                        longest = rule.Keep;
                        specific = ownTenant;
                    }
                }

                if (longest is null)
                {
                    keep = null;
                    break;
                }

                keep = keep is null || longest > keep ? longest : keep;
            }

            if (keep is { } k)
            {
                cutoffs.Add((hid, tenant, (now - k).UtcTicks));
            }
        }

        return cutoffs;
    }
}
