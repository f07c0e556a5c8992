using Machi.Portal.Storage;

namespace Machi.Portal.Procedures;

/// <summary>The two procedures every new portal starts with: 粗大ごみ収集申込 and 住民票の写し交付請求.</summary>
internal static class SeedProcedures
{
    private static readonly IReadOnlyList<string> Images = [FileTypes.Jpeg, FileTypes.Png];

    public static IReadOnlyList<ProcedureDefinition> All { get; } =
    [
        new(
            "sodai-gomi",
            new("粗大ごみ収集申込", "Oversized waste collection"),
            new("家具や家電など、ごみ集積所に出せない大きなごみの戸別収集を申し込みます。収集日の7日前までにお申し込みください。処理券（1点につき所定の金額）を購入し、品目に貼って出してください。",
                "Apply for collection at your door of furniture and other items too large for the waste station. Apply at least 7 days before the collection day. Buy a disposal ticket for each item and stick it on the item."),
            new("環境生活課 廃棄物対策グループ", "Environment Division, Waste Management"),
            [
                new("name", "text", new("氏名", "Full name"), Required: true, MaxLength: 60),
                new("phone", "tel", new("日中の連絡先電話番号", "Daytime phone number"), new("例: 0242-39-1234", "e.g. 0242-39-1234"), Required: true),
                new("district", "district", new("収集場所の町字", "District (town) of the collection place"), Required: true),
                new("address", "text", new("番地・建物名", "Street number and building"), new("例: 1-2-3", "e.g. 1-2-3"), Required: true, MaxLength: 100),
                new("items", "textarea", new("品目（例: たんす、自転車）", "Items (e.g. chest of drawers, bicycle)"), Required: true, MaxLength: 500),
                new("count", "number", new("点数", "Number of items"), new("1回に10点まで", "Up to 10 items at a time"), Required: true, Min: 1, Max: 10),
                new("date", "date", new("収集希望日", "Preferred collection day"), new("7日後以降の日付", "At least 7 days from today"), Required: true, MinDaysAhead: 7),
                new("place", "select", new("出す場所", "Where you will leave the items"), Required: true, Options:
                [
                    new("entrance", new("玄関先", "In front of the entrance")),
                    new("roadside", new("道路に面した敷地内", "On my land by the road")),
                    new("other", new("その他（備考に記入）", "Other (write in the remarks)")),
                ]),
                new("remarks", "textarea", new("備考", "Remarks"), MaxLength: 500),
                new("ticket", "checkbox", new("処理券を購入して品目に貼ります", "I will buy disposal tickets and stick them on the items"), Required: true),
            ],
            [
                new("photo", new("品目の写真（任意）", "Photo of the items (optional)"), Types: Images),
            ]),
        new(
            "juminhyo",
            new("住民票の写し交付請求", "Request for a copy of the residence certificate (住民票)"),
            new("本人または同一世帯の方の住民票の写しを請求します。手数料は1通300円です。窓口での受け取りか、住民登録地への郵送を選べます。本人確認書類の画像を添付してください。",
                "Request copies of the residence certificate for yourself or your household. The fee is 300 yen per copy. Collect it at the counter or have it posted to your registered address. Attach an image of your identity document."),
            new("市民課 住民記録グループ", "Citizens Division, Resident Records"),
            [
                new("name", "text", new("請求者の氏名", "Your full name"), Required: true, MaxLength: 60),
                new("birth_date", "date", new("生年月日", "Date of birth"), Required: true),
                new("district", "district", new("住所の町字", "District (town) of your address"), Required: true),
                new("address", "text", new("番地・建物名", "Street number and building"), Required: true, MaxLength: 100),
                new("scope", "select", new("記載する人", "Who the copy covers"), Required: true, Options:
                [
                    new("self", new("本人のみ", "Only me")),
                    new("household", new("世帯全員", "Everyone in the household")),
                ]),
                new("copies", "number", new("通数", "Number of copies"), Required: true, Min: 1, Max: 10),
                new("purpose", "select", new("使いみち", "Purpose"), Required: true, Options:
                [
                    new("employment", new("就職・勤務先への提出", "Employment")),
                    new("pension", new("年金の手続き", "Pension")),
                    new("vehicle", new("自動車の登録", "Vehicle registration")),
                    new("other", new("その他", "Other")),
                ]),
                new("delivery", "select", new("受け取り方法", "How you receive it"), Required: true, Options:
                [
                    new("counter", new("市役所の窓口で受け取る", "Collect at the city hall counter")),
                    new("post", new("住民登録地へ郵送", "Post to my registered address")),
                ]),
                new("phone", "tel", new("日中の連絡先電話番号", "Daytime phone number"), Required: true),
            ],
            [
                new("id_document", new("本人確認書類（マイナンバーカード、運転免許証など）", "Identity document (My Number card, driving licence, …)"),
                    new("表面を撮影した画像、またはPDF", "A photo of the front, or a PDF"), Required: true),
            ]),
    ];

    public static StoredProcedure Stored(ProcedureDefinition definition, DateTimeOffset at) => new(definition.Code, definition.ToJson(), true, at);
}
