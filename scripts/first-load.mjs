// Measures the first load of the built app on localhost, from nothing cached
// (a new browser profile each time) to the page saying ready, in CPU mode and
// on WebGPU (SwiftShader where there is no GPU), and prints when each loading
// stage began. The release build is what `scripts/serve.sh` serves:
//
//   trunk build --release --dist /tmp/dist-release
//   DIST=/tmp/dist-release node scripts/first-load.mjs [runs]
//
// Without DIST it measures dist/ (the end-to-end tests' build, larger and
// slower to compile). Environment as for tests/e2e/lib.mjs (CHROMIUM).
import { chromium } from 'playwright-core';
import { startServer } from '../tests/e2e/lib.mjs';

const RUNS = Number(process.argv[2] ?? 2);
const MODES = [['cpu', []], ['webgpu', ['--enable-unsafe-webgpu']]];
const ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

// In the page before the app: each new loading stage (numbers aside) and when it showed.
function recordStages() {
  window.__stages = [];
  const shape = (s) => s.replace(/[\d.]+/g, '#');
  new MutationObserver(() => {
    const app = document.querySelector('[data-testid="app"]');
    const stage = document.querySelector('[data-testid="loading-stage"]')?.textContent ?? app?.dataset.state;
    const last = window.__stages[window.__stages.length - 1];
    if (stage && (!last || shape(last.stage) !== shape(stage))) window.__stages.push({ stage, at: performance.now() });
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

const server = await startServer();
try {
  for (const [mode, args] of MODES) {
    for (let run = 1; run <= RUNS; run++) {
      const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: [...ARGS, ...args] });
      try {
        const page = await (await browser.newContext()).newPage();
        await page.addInitScript(recordStages);
        const started = Date.now();
        await page.goto(`${server.origin}/`, { waitUntil: 'load' });
        await page.waitForFunction(() => ['ready', 'failed'].includes(document.querySelector('[data-testid="app"]')?.dataset.state),
          null, { timeout: 300_000 });
        const seconds = (Date.now() - started) / 1000;
        console.log(`${mode}, run ${run}: ready in ${seconds.toFixed(2)} s`);
        for (const { stage, at } of await page.evaluate(() => window.__stages)) {
          console.log(`  ${(at / 1000).toFixed(2).padStart(6)} s  ${stage}`);
        }
      } finally {
        await browser.close();
      }
    }
  }
} finally {
  await server.close();
}
