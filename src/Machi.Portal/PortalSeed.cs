using Machi.Portal.Procedures;
using Machi.Portal.Storage;

namespace Machi.Portal;

/// <summary>First-run data: the example procedures, and a few real-looking notices for the demo city.</summary>
internal static class PortalSeed
{
    public static async Task RunAsync(IPortalStore store, TimeProvider time, bool demoNotices, CancellationToken cancellationToken)
    {
        await store.MigrateAsync(cancellationToken);
        var now = time.GetUtcNow();
        if (await store.ClaimOnceAsync("seed:procedures", now, cancellationToken))
        {
            foreach (var definition in SeedProcedures.All)
            {
                if (await store.GetProcedureAsync(definition.Code, cancellationToken) is null)
                {
                    await store.SaveProcedureAsync(SeedProcedures.Stored(definition, now), cancellationToken);
                }
            }
        }

        if (demoNotices && await store.ClaimOnceAsync("seed:notices", now, cancellationToken))
        {
            foreach (var notice in Notices(now))
            {
                await store.AddNoticeAsync(notice, cancellationToken);
            }
        }
    }

    private static IEnumerable<Notice> Notices(DateTimeOffset now)
    {
        Notice N(int daysAgo, string category, Audience audience, string titleJa, string titleEn, string bodyJa, string bodyEn) =>
            new(0, new Bilingual(titleJa, titleEn), new Bilingual(bodyJa, bodyEn), category, audience, now.AddDays(-daysAgo), null, "seed", now);

        yield return N(6, "snow", new Audience([], [], [], []),
            "今冬の除雪作業について", "Snow clearing this winter",
            "市では、降雪量がおおむね10センチメートルを超えたときに除雪車を出動させます。路上駐車は除雪作業の妨げになりますので、ご協力をお願いします。\n除雪車の現在位置は「除雪車ナビ」で確認できるようになる予定です。",
            "The city sends out snowplows when about 10 cm of snow or more has fallen. Cars parked on the road hold the plows up: please park off the road.\nYou will be able to see where the plows are in Snowplow Navi.");
        yield return N(5, "events", new Audience([], [], [], ["events"]),
            "鶴ヶ城 冬まつりのお知らせ", "Tsuruga Castle winter festival",
            "鶴ヶ城公園で雪灯りとともに冬まつりを開催します。会場周辺は交通規制があります。公共交通機関をご利用ください。",
            "The winter festival with snow lanterns takes place in Tsuruga Castle Park. Roads around the park are closed to traffic: please come by bus or train.");
        yield return N(4, "garbage", new Audience(["一箕町大字八幡"], [], [], []),
            "一箕町大字八幡地区 水道管工事に伴う断水のお知らせ", "Water outage for pipe works in Ikkimachi Yawata",
            "水道管の更新工事のため、一箕町大字八幡の一部で午前9時から午後3時まで断水します。事前に飲み水の確保をお願いします。",
            "Water pipe renewal: part of Ikkimachi Yawata has no water from 9:00 to 15:00. Please keep drinking water ready beforehand.");
        yield return N(3, "disaster", new Audience(["北会津町古舘"], [], [], []),
            "北会津町古舘地区 防災訓練の実施について", "Disaster drill in Kitaaizu Furudate",
            "北会津町古舘地区で、洪水を想定した避難訓練を実施します。地区の指定避難所までの経路を確認しましょう。",
            "A flood evacuation drill takes place in Kitaaizu Furudate. Check your route to the district's designated shelter.");
        yield return N(2, "childcare", new Audience([], [], ["children"], []),
            "乳幼児健康診査のご案内", "Health check-ups for babies and toddlers",
            "1歳6か月児・3歳児健康診査を保健センターで実施します。対象のお子さまには個別に通知をお送りしています。",
            "The health centre holds check-ups for children aged 18 months and 3 years. Families with a child of that age receive a letter.");
        yield return N(1, "health", new Audience([], ["65to74", "75plus"], [], []),
            "高齢者インフルエンザ予防接種の助成", "Subsidised flu vaccination for older residents",
            "65歳以上の方は、市内の協力医療機関でインフルエンザ予防接種を自己負担1,500円で受けられます。",
            "Residents aged 65 or over can get the flu vaccine at partner clinics in the city for 1,500 yen.");
    }
}
