// Prints how long the built app takes to generate in headless Chromium on
// WebGPU (SwiftShader where there is no GPU): the base model, one prompt,
// three times in one page, so the first run's kernel compilation shows as the
// difference between the first and the later runs. Each run also prints the
// decode rate the page reports, to set beside `mose bench --backend wgpu`
// (docs/PERFORMANCE.md).
//
// usage, from the repository root, after `trunk build --release`:
//   node benches/browser_generate.mjs        (DIST=dist, CHROMIUM=/usr/bin/chromium)
//   BACKEND=cpu node benches/browser_generate.mjs   (Chromium without WebGPU: the app's CPU mode)
import { CPU_ARGS, WEBGPU_ARGS, tid, startServer, openApp, waitUntil } from '../tests/e2e/lib.mjs';

const PROMPT = 'The old house at the end of the road';
const RUNS = 3;

const server = await startServer();
const args = process.env.BACKEND === 'cpu' ? CPU_ARGS : WEBGPU_ARGS;
const run = await openApp(server.origin, { args, label: 'generate' });
try {
  const { page, log } = run;
  await page.fill(tid('prompt'), PROMPT);
  const reached = (want) => document.querySelector('[data-testid="generation"]')?.dataset.state === want;
  for (let i = 1; i <= RUNS; i++) {
    const started = Date.now();
    await page.click(tid('generate'));
    await waitUntil(page, reached, 'streaming', { timeout: 60_000, what: 'generation did not start' });
    await waitUntil(page, reached, 'done', { timeout: 600_000, what: 'generation did not finish' });
    const text = (await page.textContent(tid('generation'))) ?? '';
    const speed = await page.getAttribute(tid('generation-speed'), 'data-decode-tokens-per-second');
    const shown = (await page.textContent(tid('generation-speed'))) ?? '';
    log(`run ${i}: ${((Date.now() - started) / 1000).toFixed(1)} s, decode ${Number(speed).toFixed(2)} tokens/s (${shown}): ${JSON.stringify(text.slice(0, 60))}`);
  }
} finally {
  await run.close();
  server.close();
}
