// The console's service worker: it makes the console installable as an app on a phone and
// answers a navigation with a plain "offline" page when the relay cannot be reached.
//
// It caches nothing. The approver's code always comes fresh from the server the console was
// loaded from, with its integrity checked by the page, so a stale or planted copy can never
// sit here between updates; and no relay answer (requests, directory) is ever kept.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

const OFFLINE = `<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>sealbox: offline</title><h1>sealbox is offline</h1>
<p>The relay cannot be reached. Nothing can be approved until it can.</p>`;

self.addEventListener("fetch", (event) => {
  if (event.request.mode !== "navigate") return;
  event.respondWith(
    fetch(event.request).catch(
      () =>
        new Response(OFFLINE, {
          status: 503,
          headers: {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": "default-src 'none'",
            "cache-control": "no-store",
          },
        }),
    ),
  );
});
