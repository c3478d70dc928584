// End-to-end: the built app (Trunk's dist/) in headless Chromium, driven by
// playwright-core. It serves dist/ itself on 127.0.0.1 (an ephemeral port),
// loads the page once with WebGPU (SwiftShader) and once without it, and
// checks that the device check trains: the loss falls, steps/s is positive,
// the frozen weights are unchanged, the page kept painting frames while it
// trained, and nothing was fetched after the page loaded.
//
// usage: node --test tests/e2e/   (DIST=dist, SHOTS=docs/screenshots, CHROMIUM=/usr/bin/chromium)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const dist = path.resolve(process.env.DIST ?? 'dist');
const shots = process.env.SHOTS ? path.resolve(process.env.SHOTS) : null;
const CHECK_TIMEOUT_MS = 300_000;
const BASE_ARGS = [
  '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--no-first-run',
];
const MIME = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.css': 'text/css', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
};

let server;
let origin;

before(async () => {
  assert.ok(fs.existsSync(path.join(dist, 'index.html')), `no ${dist}/index.html: run trunk build first`);
  server = http.createServer((req, res) => {
    let p = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    if (p.endsWith('/')) p += 'index.html';
    const file = path.join(dist, p);
    if (!file.startsWith(dist) || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
});

after(() => server?.close());

// Records, from before the app starts, each change of the check's state and
// every animation frame the page paints.
function recordStatesAndFrames() {
  window.__states = [];
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new MutationObserver(() => {
    const el = document.querySelector('[data-testid="check-state"]');
    const state = el?.getAttribute('data-state');
    if (state && window.__states.at(-1)?.state !== state) {
      window.__states.push({ state, at: performance.now() });
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
}

async function openApp(extraArgs) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [...BASE_ARGS, ...extraArgs],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  const lateRequests = [];
  let loaded = false;
  page.on('request', (r) => { if (loaded) lateRequests.push(r.url()); });
  await page.addInitScript(recordStatesAndFrames);
  await page.goto(`${origin}/`, { waitUntil: 'load' });
  loaded = true;
  await page.waitForSelector('[data-testid="check-state"][data-state="done"], [data-testid="check-state"][data-state="failed"]',
    { timeout: CHECK_TIMEOUT_MS });
  const text = async (id) => (await page.textContent(`[data-testid="${id}"]`))?.trim();
  const result = {
    state: await page.getAttribute('[data-testid="check-state"]', 'data-state'),
    status: await text('check-state'),
    backend: await text('backend'),
    device: await text('device'),
    firstLoss: Number(await text('first-loss')),
    lastLoss: Number(await text('last-loss')),
    stepsPerSecond: Number(await text('steps-per-second')),
    frozen: await text('frozen'),
    timeline: await page.evaluate(() => ({ states: window.__states, frames: window.__frames })),
  };
  console.log(`  ${result.backend}: loss ${result.firstLoss} -> ${result.lastLoss}, ${result.stepsPerSecond} steps/s; ${result.device}`);
  return { browser, page, problems, lateRequests, result };
}

function assertTrained({ problems, lateRequests, result }, backend) {
  assert.equal(result.state, 'done', `the check did not finish: ${result.status}`);
  assert.equal(result.backend, backend);
  assert.ok(result.lastLoss < result.firstLoss, `loss did not fall: ${result.firstLoss} -> ${result.lastLoss}`);
  assert.ok(result.stepsPerSecond > 0, `steps/s ${result.stepsPerSecond}`);
  assert.match(result.frozen, /unchanged/);
  assert.deepEqual(problems, []);
  assert.deepEqual(lateRequests, [], 'network requests after the page loaded');
}

test('device check trains on WebGPU and the page keeps painting', { timeout: CHECK_TIMEOUT_MS + 60_000 }, async () => {
  const run = await openApp(['--enable-unsafe-webgpu']);
  try {
    assertTrained(run, 'wgpu');
    assert.match(run.result.device, /^WebGPU/);
    const { states, frames } = run.result.timeline;
    const started = states.find((s) => s.state === 'running')?.at;
    const finished = states.find((s) => s.state === 'done')?.at;
    assert.ok(started !== undefined && finished !== undefined, `states seen: ${JSON.stringify(states)}`);
    const painted = frames.filter((t) => t >= started && t <= finished).length;
    assert.ok(painted >= 3, `only ${painted} frames painted while training (the loop must yield)`);
    if (shots) {
      fs.mkdirSync(shots, { recursive: true });
      await run.page.screenshot({ path: path.join(shots, 'device-check.png'), fullPage: true });
    }
  } finally {
    await run.browser.close();
  }
});

test('without WebGPU the app says so and trains on the CPU', { timeout: CHECK_TIMEOUT_MS + 60_000 }, async () => {
  const run = await openApp([]);
  try {
    assertTrained(run, 'cpu');
    assert.match(run.result.device, /CPU mode/);
    if (shots) {
      await run.page.screenshot({ path: path.join(shots, 'device-check-cpu.png'), fullPage: true });
    }
  } finally {
    await run.browser.close();
  }
});
