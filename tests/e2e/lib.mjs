// Helpers shared by the end-to-end tests in this folder. This module is not a
// test itself: `node --test tests/e2e/` runs only the files whose names match
// node's test patterns (*.test.mjs here), so lib.mjs is imported, never run.
//
// It serves dist/ on 127.0.0.1 (an ephemeral port), launches Debian's Chromium
// through playwright-core (with `--enable-unsafe-webgpu` for WebGPU on
// SwiftShader, without it for CPU mode), and records what the tests assert:
// page errors, console errors, every request made after the page said ready
// (the page's and its service worker's), and, from before the app starts,
// each change of a few `data-state`s and every animation frame painted. The
// selectors are the app's test contract (CONTRACT.md).
//
// Environment: DIST (default dist), SHOTS (a folder for screenshots; none when
// unset), CHROMIUM (default /usr/bin/chromium), E2E_READY_TIMEOUT_MS (how long
// to wait for the page to say ready; default 5 minutes).
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

export const dist = path.resolve(process.env.DIST ?? 'dist');
export const shots = process.env.SHOTS ? path.resolve(process.env.SHOTS) : null;
export const READY_TIMEOUT_MS = Number(process.env.E2E_READY_TIMEOUT_MS ?? 300_000);
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu'];
export const CPU_ARGS = [];

const BASE_ARGS = [
  '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--no-first-run',
];
const MIME = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
};

/** `[data-testid="id"]`. */
export const tid = (id) => `[data-testid="${id}"]`;

/** Serves dist/ on 127.0.0.1 at an ephemeral port: `{ origin, close }`. */
export async function startServer() {
  assert.ok(fs.existsSync(path.join(dist, 'index.html')), `no ${dist}/index.html: run trunk build --release (or scripts/test.sh) first`);
  const server = http.createServer((req, res) => {
    let p = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    if (p.endsWith('/')) p += 'index.html';
    const file = path.join(dist, p);
    if (!file.startsWith(dist) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404); res.end(); return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A fresh folder under the system's temporary directory. */
export const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mose-e2e-'));

// Runs in the page before the app: records every animation frame painted and
// every change of `data-state` on the watched elements, as
// `{ id, state, at }` (at: performance.now()). Attribute records carry the old
// value, so a state that lasts less than one observer callback is not lost.
function recordStatesAndFrames() {
  const watched = ['app', 'train-state', 'generation'];
  window.__states = [];
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const last = {};
  const note = (id, state) => {
    if (state && last[id] !== state) {
      last[id] = state;
      window.__states.push({ id, state, at: performance.now() });
    }
  };
  new MutationObserver((records) => {
    const now = (el) => el.getAttribute('data-state');
    records.forEach((r, i) => {
      if (r.type !== 'attributes' || r.attributeName !== 'data-state') return;
      const id = r.target.getAttribute?.('data-testid');
      if (!watched.includes(id)) return;
      // the value this record set: the old value of the next record on the same element, or the current one
      const next = records.slice(i + 1).find((s) => s.target === r.target && s.type === 'attributes' && s.attributeName === 'data-state');
      note(id, next ? next.oldValue : now(r.target));
    });
    for (const id of watched) {
      const el = document.querySelector(`[data-testid="${id}"]`);
      if (el) note(id, now(el));
    }
  }).observe(document, {
    subtree: true, childList: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-state'],
  });
}

/** Everything the init script recorded: `{ states, frames }`. */
export const timeline = (page) => page.evaluate(() => ({ states: window.__states, frames: window.__frames }));

/** Trimmed text of the first element with this test id (waits up to `timeout` for it). */
export async function text(page, id, timeout = 10_000) {
  return ((await page.locator(tid(id)).first().textContent({ timeout })) ?? '').trim();
}

/** Trimmed text of the first element with this test id, '' when there is none (no wait). */
export const textNow = (page, id) => page.evaluate(
  (sel) => document.querySelector(sel)?.textContent.trim() ?? '', tid(id));

/** The first integer in the element's text (`learned-count`), NaN when none. */
export async function numberIn(page, id) {
  const m = (await textNow(page, id)).match(/\d+/);
  return m ? Number(m[0]) : NaN;
}

/** The task cards, in order: `[{ name, learned }]`. */
export const cards = (page) => page.$$eval(tid('task-card'), (els) => els.map((e) => ({
  name: e.getAttribute('data-task-name'), learned: e.getAttribute('data-learned'),
})));

/** A one-line account of the page, for failure messages. */
export async function describePage(page) {
  return page.evaluate(() => {
    const q = (id) => document.querySelector(`[data-testid="${id}"]`);
    const t = (id) => q(id)?.textContent.trim().replace(/\s+/g, ' ').slice(0, 300);
    const parts = [
      `app=${q('app')?.getAttribute('data-state')}`,
      `loading-stage=${JSON.stringify(t('loading-stage'))}`,
      `load-error=${JSON.stringify(t('load-error'))}`,
      `cards=${document.querySelectorAll('[data-testid="task-card"]').length}`,
      `train-state=${q('train-state')?.getAttribute('data-state')}`,
      `train-task=${JSON.stringify(t('train-task'))}`,
      `train-progress=${JSON.stringify(t('train-progress'))}`,
      `learned-count=${JSON.stringify(t('learned-count'))}`,
      `generation=${q('generation')?.getAttribute('data-state')}`,
      `error=${JSON.stringify(t('error'))}`,
      `notice=${JSON.stringify(t('notice'))}`,
    ];
    return parts.filter((p) => !p.endsWith('=undefined')).join(', ');
  });
}

/**
 * Waits until `fn(arg)` is truthy in the page. On timeout it fails with
 * `what` and an account of the page instead of playwright's bare timeout.
 */
export async function waitUntil(page, fn, arg, { timeout = 30_000, what }) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 250 });
  } catch (e) {
    if (e?.name !== 'TimeoutError') throw e;
    const state = await describePage(page).catch((x) => `(could not read the page: ${x.message})`);
    assert.fail(`${what}: not within ${Math.round(timeout / 1000)} s; ${state}`);
  }
}

/** Waits for `[data-testid=app]` to say `ready`; fails with `load-error` if it says `failed`. */
export async function waitReady(page, timeout = READY_TIMEOUT_MS) {
  await waitUntil(page, () => {
    const s = document.querySelector('[data-testid="app"]')?.getAttribute('data-state');
    return s === 'ready' || s === 'failed';
  }, null, { timeout, what: 'the page did not say ready ([data-testid=app][data-state=ready])' });
  const state = await page.getAttribute(tid('app'), 'data-state');
  assert.equal(state, 'ready', `the page failed to load: ${await textNow(page, 'load-error')}`);
}

/** Waits for exactly `n` task cards. */
export async function waitCards(page, n, what = `expected ${n} task card(s)`) {
  await waitUntil(page, (k) => document.querySelectorAll('[data-testid="task-card"]').length === k, n, { what });
}

// Records every request that reaches the network while it is on, from the
// page (page.on) and from the whole context (context.on: the service worker's
// own requests too), each once. A page request the service worker answers
// from its cache never leaves the browser (a starter pack chosen after the
// offline copy is kept), so it is dropped once its response says so; if the
// worker goes to the network instead, that is its own request, recorded.
// blob: and data: URLs are not requests that leave the page (an export is a
// blob: download), so they are not counted.
function recordNetwork(context, page) {
  const seen = new Set();
  const noted = [];
  const fromCache = new Set();
  let on = false;
  const note = (r) => {
    if (!on || seen.has(r)) return;
    seen.add(r);
    const url = r.url();
    if (url.startsWith('blob:') || url.startsWith('data:')) return;
    const from = typeof r.serviceWorker === 'function' && r.serviceWorker() ? 'the service worker' : 'the page';
    noted.push({ r, text: `${r.method()} ${url} (from ${from})` });
  };
  page.on('request', note);
  context.on('request', note);
  page.on('response', (response) => { if (response.fromServiceWorker()) fromCache.add(response.request()); });
  return {
    start() { on = true; },
    pause() { on = false; },
    get requests() { return noted.filter(({ r }) => !fromCache.has(r)).map(({ text }) => text); },
  };
}

/**
 * Launches Chromium with `args`, opens the app and waits until it says ready;
 * from then on every request is recorded (`run.net.requests`). Returns
 * `{ browser, context, page, problems, net, log, close }`; `problems` holds
 * `pageerror`s and console errors as strings, `log` prints one line tagged
 * with `label`. `init`, when given, is one more script that runs in the page
 * before the app.
 */
export async function openApp(origin, { args, label, init }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [...BASE_ARGS, ...args],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems = { pageErrors: [], consoleErrors: [] };
  page.on('pageerror', (e) => problems.pageErrors.push(`pageerror: ${e}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.consoleErrors.push(`console: ${m.text()}`); });
  const net = recordNetwork(context, page);
  const log = (...parts) => console.log(`  [${label}]`, ...parts);
  await page.addInitScript(recordStatesAndFrames);
  if (init) await page.addInitScript(init);
  const started = Date.now();
  try {
    await page.goto(`${origin}/`, { waitUntil: 'load' });
    await waitReady(page);
  } catch (e) {
    await browser.close();
    throw e;
  }
  net.start();
  // The page's own clock, from the start of the navigation to `data-state=ready`
  // (the test itself only sees it at its next poll).
  const readyAt = await page.evaluate(() => window.__states.find((s) => s.id === 'app' && s.state === 'ready')?.at);
  const first = readyAt === undefined ? '?' : (readyAt / 1000).toFixed(2);
  log(`ready in ${first} s from navigation start (the test saw it after ${seconds(started)} s); device: ${await textNow(page, 'device')}; backend: ${await textNow(page, 'backend')}`);
  return { browser, context, page, problems, net, log, close: () => browser.close() };
}

/** Reloads the page and waits for ready; the requests of the reload itself are not recorded. */
export async function reloadApp(run) {
  run.net.pause();
  const started = Date.now();
  await run.page.reload({ waitUntil: 'load' });
  await waitReady(run.page);
  run.net.start();
  run.log(`reloaded, ready again in ${seconds(started)} s`);
}

/** Seconds since `t0` (a Date.now()), one decimal. */
export const seconds = (t0) => ((Date.now() - t0) / 1000).toFixed(1);

/** Adds a starter pack as a task card and waits for the card. */
export async function addPack(page, pack) {
  const before = (await cards(page)).length;
  await page.selectOption(tid('pack-select'), pack);
  await page.click(tid('add-pack'));
  await waitCards(page, before + 1, `adding the pack ${pack} gave no new task card`);
}

/**
 * Opens the train panel's settings and sets each `{ 'train-steps': 14, ... }`
 * input (test ids), checking that it kept the value.
 */
export async function setTraining(page, values) {
  const settings = page.locator(tid('train-settings'));
  if (!(await settings.evaluate((d) => d.open))) await settings.locator('summary').first().click();
  for (const [id, value] of Object.entries(values)) {
    await page.fill(tid(id), String(value));
    await page.locator(tid(id)).blur();
    assert.equal(await page.inputValue(tid(id)), String(value), `${id} did not keep ${value}`);
  }
}

/** Fills the name and text of a new task and clicks add-text (no wait). */
export async function fillNewTask(page, name, body) {
  await page.fill(tid('new-task-name'), name);
  await page.fill(tid('new-task-text'), body);
  await page.click(tid('add-text'));
}

/** Adds a pasted task and waits for its card. */
export async function addText(page, name, body) {
  const before = (await cards(page)).length;
  await fillNewTask(page, name, body);
  await waitCards(page, before + 1, `adding the pasted task ${name} gave no new task card`);
}

/** Clicks export-project and saves the download into `dir`: `{ file, name, bytes }`. */
export async function exportProject(page, dir, button = 'export-project') {
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 60_000 }),
    page.click(tid(button)),
  ]);
  const name = download.suggestedFilename();
  const file = path.join(dir, name || 'project.moselab');
  await download.saveAs(file);
  return { file, name, bytes: fs.readFileSync(file) };
}

/** Text of the `error` region ('' when there is none). */
export const errorText = (page) => textNow(page, 'error');

// --- safetensors -----------------------------------------------------------

/** Splits a safetensors file: `{ headerText, header, data }` (throws when it is not one). */
export function readSafetensors(bytes) {
  assert.ok(bytes.length >= 8, `a safetensors file needs an 8-byte header length; this has ${bytes.length} bytes`);
  const n = bytes.readBigUInt64LE(0);
  assert.ok(n > 0n && n <= BigInt(bytes.length - 8), `header length ${n} does not fit in ${bytes.length} bytes`);
  const headerText = bytes.subarray(8, 8 + Number(n)).toString('utf8');
  return { headerText, header: JSON.parse(headerText), data: bytes.subarray(8 + Number(n)) };
}

// --- zip -------------------------------------------------------------------

/** The files of a zip archive whose entries are stored (not compressed): `{ name: Buffer }`. */
export function readStoredZip(bytes) {
  const end = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, 'no end-of-central-directory record: not a zip archive');
  const entries = bytes.readUInt16LE(end + 10);
  let at = bytes.readUInt32LE(end + 16);
  const files = {};
  for (let i = 0; i < entries; i++) {
    assert.equal(bytes.readUInt32LE(at), 0x02014b50, `central directory entry ${i} has no signature`);
    const method = bytes.readUInt16LE(at + 10);
    const size = bytes.readUInt32LE(at + 20);
    const [nameLen, extraLen, commentLen] = [28, 30, 32].map((o) => bytes.readUInt16LE(at + o));
    const local = bytes.readUInt32LE(at + 42);
    const name = bytes.subarray(at + 46, at + 46 + nameLen).toString('utf8');
    assert.equal(method, 0, `${name} is compressed (method ${method}), not stored`);
    assert.equal(bytes.readUInt32LE(local), 0x04034b50, `${name} has no local header`);
    const data = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    files[name] = bytes.subarray(data, data + size);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

/** A safetensors file from a header's JSON text (padded with spaces to a multiple of 8) and the data bytes. */
export function writeSafetensors(headerText, data = Buffer.alloc(0)) {
  const json = Buffer.from(headerText, 'utf8');
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([len, padded, data]);
}

// --- accessibility ----------------------------------------------------------

/**
 * Runs axe-core on the page and returns its `serious` and `critical`
 * violations, each `{ id, impact, help, helpUrl, nodes: [{ target, summary }] }`.
 */
export async function axeSeriousViolations(page) {
  let axePath;
  try {
    axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
  } catch {
    assert.fail('axe-core is not installed (node_modules/axe-core): run npm ci');
  }
  await page.addScriptTag({ path: axePath });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Violations as readable lines. */
export function formatViolations(violations) {
  return violations.map((v) => [
    `- ${v.impact}: ${v.id}: ${v.help} (${v.helpUrl})`,
    ...v.nodes.slice(0, 8).map((n) => `    at ${n.target}: ${(n.summary ?? '').replace(/\s+/g, ' ')}`),
    ...(v.nodes.length > 8 ? [`    ... and ${v.nodes.length - 8} more`] : []),
  ].join('\n')).join('\n');
}

// --- screenshots --------------------------------------------------------------

/** Saves a screenshot into $SHOTS (nothing when SHOTS is unset): the full page, or one element. */
export async function screenshot(page, name, selector) {
  if (!shots) return;
  fs.mkdirSync(shots, { recursive: true });
  const file = path.join(shots, name);
  if (selector) await page.locator(selector).first().screenshot({ path: file });
  else await page.screenshot({ path: file, fullPage: true });
}

// --- task texts ----------------------------------------------------------------

/** `count` short recipes: one paragraph each, a kitchen vocabulary nothing else in the packs has. */
export function recipes(count = 40) {
  const dishes = ['lentil soup', 'apple crumble', 'banana bread', 'tomato risotto', 'pumpkin pie',
    'chickpea curry', 'onion tart', 'carrot cake', 'mushroom stew', 'lemon drizzle cake', 'potato gratin',
    'rhubarb crumble', 'spinach quiche'];
  const fats = ['butter', 'olive oil', 'melted butter', 'sunflower oil'];
  const spices = [['garlic', 'thyme'], ['cinnamon', 'nutmeg'], ['cumin', 'coriander'], ['vanilla', 'brown sugar'],
    ['rosemary', 'black pepper'], ['ginger', 'turmeric'], ['parsley', 'lemon zest']];
  const methods = [
    (t, m) => `Bake in a hot oven at ${t} degrees for ${m} minutes, until golden on top`,
    (t, m) => `Simmer gently over a low heat for ${m} minutes, stirring now and then`,
    (t, m) => `Roast at ${t} degrees for ${m} minutes, turning the tray once halfway`,
  ];
  return Array.from({ length: count }, (_, i) => {
    const dish = dishes[i % dishes.length];
    const [a, b] = spices[(i * 3) % spices.length];
    const method = methods[i % methods.length](160 + 10 * (i % 5), 15 + 5 * (i % 7));
    return `${dish[0].toUpperCase()}${dish.slice(1)}. Whisk ${2 + (i % 3)} eggs with ${150 + 25 * (i % 6)} grams `
      + `of flour and a tablespoon of ${fats[i % fats.length]}. Stir in a teaspoon of ${a} and a pinch of ${b}, `
      + `then season with salt. ${method}. Let it rest for five minutes and serve warm with a spoonful of cream.`;
  });
}

/** `count` short weather reports, one paragraph each. */
export function weatherReports(count = 40) {
  const places = ['Aberdeen', 'Bristol', 'Cardiff', 'Dover', 'Exeter', 'Galway', 'Hull', 'Inverness', 'Leeds'];
  const days = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
  const winds = ['northerly', 'easterly', 'southerly', 'westerly', 'north-westerly'];
  const skies = ['Morning fog clears to sunny spells', 'Heavy cloud with drizzle at first', 'Bright and clear all day',
    'Scattered thundery showers', 'Overcast with a chance of sleet on high ground'];
  return Array.from({ length: count }, (_, i) => `Weather report for ${places[i % places.length]} on `
    + `${days[i % days.length]}. ${skies[i % skies.length]}, with a light ${winds[i % winds.length]} breeze of `
    + `${5 + (i % 20)} kilometres per hour. Highs of ${8 + (i % 15)} degrees, lows near ${i % 6}. `
    + `A ${10 * (i % 10)} per cent chance of rain this evening; the barometer is ${i % 2 ? 'rising' : 'falling'}.`);
}
