using Microsoft.AspNetCore.Http;

namespace Machi.Snow.Map;

/// <summary>Every text of the Snow pages in Japanese (default) and English.</summary>
internal static class SnowTexts
{
    public const string LangCookie = "machi.lang";

    private static readonly Dictionary<string, (string Ja, string En)> Texts = new(StringComparer.Ordinal)
    {
        ["title"] = ("除雪車ナビ", "Snowplow Navi"),
        ["subtitle"] = ("除雪車の現在地と除雪状況（リアルタイム）", "Where the snowplows are, live"),
        ["switch"] = ("English", "日本語"),
        ["legend"] = ("凡例", "Legend"),
        ["plowing"] = ("除雪中", "Plowing"),
        ["salting"] = ("凍結防止剤散布中", "Salting"),
        ["travelling"] = ("移動中", "Travelling"),
        ["simulated"] = ("シミュレーション（実車ではありません）", "Simulated (not a real vehicle)"),
        ["trails"] = ("軌跡", "Trails"),
        ["trails-none"] = ("表示しない", "None"),
        ["hours"] = ("時間", "hours"),
        ["hour"] = ("時間", "hour"),
        ["search"] = ("除雪状況の検索", "When was my street last plowed?"),
        ["search-label"] = ("町名・字名", "Town or area name (町字/小字)"),
        ["search-button"] = ("検索", "Search"),
        ["search-hint"] = ("町名で検索するか、地図をタップしてください。", "Search by town name, or tap the map."),
        ["last-plowed"] = ("最終除雪", "Last plowed"),
        ["never"] = ("記録なし", "No record"),
        ["no-match"] = ("該当する町名がありません。", "No town or area matches."),
        ["tapped"] = ("地図で選んだ地点", "The point you tapped"),
        ["within"] = ("30 m 以内を除雪車が除雪しながら通過した最後の時刻", "the last time a plowing vehicle passed within 30 m"),
        ["plows"] = ("台の除雪車", "plows"),
        ["live"] = ("ライブ", "Live"),
        ["connecting"] = ("接続中…", "Connecting…"),
        ["reconnecting"] = ("再接続中…", "Reconnecting…"),
        ["updated"] = ("更新", "Updated"),
        ["map"] = ("除雪車の地図", "Map of snowplows"),
        ["zoom-in"] = ("拡大", "Zoom in"),
        ["zoom-out"] = ("縮小", "Zoom out"),
        ["tiles"] = ("背景地図", "Base map"),
        ["attribution"] = ("住所: Geolonia 住所データ (CC BY 4.0)", "Addresses: Geolonia address data (CC BY 4.0)"),
        ["operator"] = ("運行管理（職員）", "Operator view (staff)"),
        ["stale"] = ("応答のない車両", "Units not reporting"),
        ["stale-minutes"] = ("分以上報告なし", "minutes or more without a report"),
        ["stale-none"] = ("すべての車両が報告しています。", "Every unit is reporting."),
        ["unit"] = ("車両", "Unit"),
        ["last-report"] = ("最終報告", "Last report"),
        ["state"] = ("状態", "State"),
        ["coverage"] = ("地区別除雪率（今回の降雪）", "Coverage per district (this snowfall)"),
        ["event-since"] = ("降雪開始", "Snowfall since"),
        ["event-start"] = ("新しい降雪として集計を開始", "Start a new snowfall event"),
        ["district"] = ("地区（町字）", "District (町字)"),
        ["points"] = ("地点", "Points"),
        ["passed"] = ("除雪済み", "Passed"),
        ["share"] = ("割合", "Share"),
        ["export"] = ("軌跡のCSV出力", "Export a day's tracks (CSV)"),
        ["day"] = ("日付", "Day"),
        ["download"] = ("ダウンロード", "Download"),
        ["devices"] = ("車載GPSの登録", "Register a GPS unit"),
        ["device-id"] = ("端末ID", "Unit id"),
        ["device-name"] = ("名称", "Name"),
        ["register"] = ("登録（トークン発行）", "Register (issue a token)"),
        ["token-once"] = ("このトークンは一度だけ表示されます。端末に設定してください。", "This token is shown only once: set it on the unit."),
        ["rejections"] = ("受信拒否の件数", "Rejected positions"),
        ["reason"] = ("理由", "Reason"),
        ["count"] = ("件数", "Count"),
        ["units"] = ("登録車両", "Registered units"),
        ["back-map"] = ("地図へ", "Back to the map"),
        ["show"] = ("表示", "Show"),
        ["minutes"] = ("分", "minutes"),
    };

    /// <summary>The page's language: <c>?lang=ja|en</c> (remembered in the <c>machi.lang</c> cookie), else the cookie, else Japanese.</summary>
    public static string Language(HttpContext http)
    {
        var asked = http.Request.Query["lang"].ToString();
        if (asked is "ja" or "en")
        {
            http.Response.Cookies.Append(LangCookie, asked, new CookieOptions
            {
                MaxAge = TimeSpan.FromDays(365), SameSite = SameSiteMode.Lax, HttpOnly = false, IsEssential = true, Path = "/",
            });
            return asked;
        }

        return http.Request.Cookies[LangCookie] is "en" ? "en" : "ja";
    }

    public static string T(string key, string lang) =>
        Texts.TryGetValue(key, out var text) ? (lang == "en" ? text.En : text.Ja) : key;

    /// <summary>The texts the map's script needs, for the page's language.</summary>
    public static Dictionary<string, string> ForScript(string lang) =>
        Texts.ToDictionary(p => p.Key, p => lang == "en" ? p.Value.En : p.Value.Ja, StringComparer.Ordinal);
}
