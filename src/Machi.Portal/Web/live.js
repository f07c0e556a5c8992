// Keeps the emergency-alert banner of an open page current: the server sends the banner's HTML (already in this
// page's language) over server-sent events whenever staff issue or cancel an alert.
const region = document.getElementById('alerts');
if (region && 'EventSource' in window) {
  const source = new EventSource('/portal/events');
  source.addEventListener('alerts', (event) => {
    if (region.innerHTML !== event.data) {
      region.innerHTML = event.data;
    }
    region.dataset.live = 'on';
  });
}
