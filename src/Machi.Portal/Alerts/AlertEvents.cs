using System.Text;
using Machi.Portal.Storage;
using Machi.Portal.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace Machi.Portal.Alerts;

/// <summary>
/// <c>GET /portal/events</c>: a server-sent event stream that sends an open page the new alert banner (event
/// <c>alerts</c>, HTML in the page's language) whenever staff issue or cancel an alert.
/// </summary>
internal static class AlertEvents
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(20);

    public static IEndpointRouteBuilder MapAlertEvents(this IEndpointRouteBuilder app)
    {
        app.MapGet("/portal/events", Stream).ExcludeFromDescription();
        return app;
    }

    private static async Task Stream(HttpContext http, IPortalStore store, AlertBroadcaster broadcaster, IHostApplicationLifetime lifetime)
    {
        var lang = PortalPage.LanguageOf(http);
        var viewer = await Viewer.OfAsync(http);
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
        var signals = broadcaster.Subscribe(out var subscription);
        using (subscription)
        {
            try
            {
                // A page reconnecting after a drop may have missed a change: send the current banner first.
                await SendAsync(http, store, lang, viewer, "retry: 3000\n", stop.Token);
                while (!stop.IsCancellationRequested)
                {
                    using var tick = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                    tick.CancelAfter(Heartbeat);
                    try
                    {
                        await signals.ReadAsync(tick.Token);
                        await SendAsync(http, store, lang, viewer, "", stop.Token);
                    }
                    catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                    {
                        await http.Response.WriteAsync(": keep-alive\n\n", stop.Token);
                        await http.Response.Body.FlushAsync(stop.Token);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // The page closed or the server is stopping.
            }
        }
    }

    private static async Task SendAsync(HttpContext http, IPortalStore store, string lang, Viewer viewer, string prefix, CancellationToken cancellationToken)
    {
        var alerts = await store.ActiveAlertsAsync(cancellationToken);
        var district = viewer.IsSignedIn ? (await store.GetProfileAsync(viewer.UserId!, cancellationToken))?.District : null;
        var html = AlertBanner.Render(alerts, lang, district);
        var message = new StringBuilder(prefix).Append("event: alerts\n");
        foreach (var line in html.Split('\n'))
        {
            message.Append("data: ").Append(line).Append('\n');
        }

        message.Append('\n');
        await http.Response.WriteAsync(message.ToString(), cancellationToken);
        await http.Response.Body.FlushAsync(cancellationToken);
    }
}
