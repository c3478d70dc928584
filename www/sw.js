// MoSE Lab's service worker: the app works offline after the first load
// (README.md, "Using the app": it keeps an offline copy before it says ready).
//
// This file is a template. scripts/sw-manifest.mjs, a Trunk post_build hook
// (Trunk.toml), writes it into the build as sw.js with the two placeholders
// below filled in: every file of the build, and a version hashed from their
// names and contents, so each build gets its own cache.
//
// On install it stores every file of the build in one cache; the page waits
// for that (window.moseOffline in index.html resolves "ready" once a worker is
// active, that is once its install has cached everything) before it says it is
// ready; what the page asks for after that (a starter pack a person adds) this
// cache answers. So once the page is ready, a reload needs no network. The browser itself still asks the server
// for sw.js a few seconds after a page load (its update check, which is how a
// new build arrives: a new sw.js installs a new cache); that request carries
// nothing of the person's work, and offline it just fails.
//
// Requests are answered from the cache first, then from the network; what the
// network answers is never stored, except a model under served/ (large and
// optional, so never precached: www/served/README.md), which is kept in its
// own cache the first time the page loads it, so a chosen served model works
// offline too; served/index.json is asked of the network first. Only
// same-origin GET requests are handled; the browser does the rest as if there
// were no worker.
"use strict";

const VERSION = "__MOSE_SW_VERSION__";
const FILES = ["__MOSE_SW_FILES__"];

const PREFIX = "mose-lab-";
const CACHE = PREFIX + VERSION;
// Not under PREFIX: a new build keeps the served models it already holds.
const SERVED_CACHE = "mose-served";
const SERVED_PATH = new URL("served/", self.registration.scope).pathname;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // cache: "no-cache" asks the server whether what the HTTP cache holds is
      // still current: never the previous build's index.html, but no second
      // download of what the page has just loaded either.
      await cache.addAll(FILES.map((file) => new Request(file, { cache: "no-cache" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names
          .filter((name) => name.startsWith(PREFIX) && name !== CACHE)
          .map((name) => caches.delete(name)),
      );
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) {
    return;
  }
  const path = new URL(request.url).pathname;
  if (path.startsWith(SERVED_PATH)) {
    event.respondWith(served(request, path.endsWith("/index.json")));
    return;
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const cached = await cache.match(request, { ignoreSearch: true });
      return cached || fetch(request);
    })(),
  );
});

// A served file: the list from the network first (a new model appears), a
// model from the cache first; what the network answers is kept.
async function served(request, networkFirst) {
  const cache = await caches.open(SERVED_CACHE);
  const cached = await cache.match(request, { ignoreSearch: true });
  if (cached && !networkFirst) return cached;
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    if (cached) return cached;
    throw error;
  }
}
