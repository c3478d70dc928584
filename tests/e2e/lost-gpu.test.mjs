// End-to-end: a GPU lost mid-run loses nothing (docs/UX.md, "A lost GPU").
// On WebGPU (SwiftShader), with one pasted task: start learning it, let it
// pass its first checkpoint, then destroy the page's GPUDevice, which is what
// the browser does on a driver reset. A pause writes the checkpoint (as the
// run does every 10 steps), so that SwiftShader, slow, needs few steps. The page must say what happened and
// offer the ways on, keep the checkpoint, and on "Continue on the CPU" load
// the model on the CPU and finish the task from that checkpoint; no page
// error, no panic.
//
// usage, from the repository root, after `trunk build --release` (scripts/test.sh
// builds with `--cargo-profile wasm-test`, which shares the wasm tests' build):
//   node --test --test-reporter=spec tests/e2e/lost-gpu.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  READY_TIMEOUT_MS, WEBGPU_ARGS, tid, startServer, openApp, waitUntil, addText, numberIn, textNow,
  weatherReports, shots,
  setTraining,
} from './lib.mjs';
import path from 'node:path';

// Paused (a checkpoint) after PAUSE_AT steps, resumed, destroyed one step later.
const STEPS = 5;
const PAUSE_AT = 2;

let server;
before(async () => { server = await startServer(); });
after(() => server?.close());

// Keeps every GPUDevice the page asks for, so that the test can destroy it.
function keepDevices() {
  window.__devices = [];
  if (!('GPUAdapter' in window)) return;
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    window.__devices.push(device);
    return device;
  };
}

const stepOf = (text) => Number((text.match(/step (\d+) of/) ?? [])[1] ?? 0);

test('a GPU lost mid-run keeps the checkpoint and the run goes on on the CPU', { timeout: READY_TIMEOUT_MS + 10 * 60_000 }, async () => {
  const run = await openApp(server.origin, { args: WEBGPU_ARGS, label: 'lost-gpu', init: keepDevices });
  const { page, log } = run;
  try {
    assert.equal(await textNow(page, 'backend'), 'wgpu', 'this test needs WebGPU (SwiftShader)');
    assert.ok(await page.evaluate(() => window.__devices.length) > 0, 'the page asked for no GPUDevice');
    await addText(page, 'weather', weatherReports(40).join('\n\n'));
    // SwiftShader emulates the GPU on the CPU: short sequences, one at a time.
    await setTraining(page, { 'train-steps': STEPS, 'train-batch': 1, 'train-seq-len': 32, 'train-heldout': 2 });
    await page.uncheck(tid('compare-lora'));

    const reach = (n) => waitUntil(page, (k) => {
      const progress = document.querySelector('[data-testid="train-progress"]')?.textContent ?? '';
      return document.querySelector('[data-testid="train-state"]')?.dataset.state === 'running'
        && Number((progress.match(/step (\d+) of/) ?? [])[1] ?? 0) >= k;
    }, n, { timeout: 300_000, what: `the run did not reach step ${n}` });
    await page.click(tid('learn-next'));
    await reach(PAUSE_AT);
    await page.click(tid('pause'));
    await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'paused',
      null, { timeout: 120_000, what: 'the run did not pause' });
    const kept = stepOf(await textNow(page, 'train-progress'));
    await page.click(tid('resume'));
    await reach(kept + 1);
    const before = await textNow(page, 'train-progress');
    await page.evaluate(() => window.__devices.forEach((d) => d.destroy()));
    log(`destroyed the GPUDevice at: ${before}`);

    await waitUntil(page, () => !!document.querySelector('[data-testid="gpu-lost"]'), null,
      { timeout: 120_000, what: 'the page did not say the GPU was lost' });
    const said = await textNow(page, 'error');
    log(`the page says: ${said}`);
    assert.match(said, new RegExp(`checkpoint, step ${kept} of ${STEPS}, is kept`), 'the message does not name the kept checkpoint');
    assert.equal(await page.getAttribute(tid('train-state'), 'data-state'), 'failed');
    assert.equal(await numberIn(page, 'learned-count'), 0);
    if (shots) await page.locator(tid('panel-train')).screenshot({ path: path.join(shots, 'gpu-lost.png') });

    await page.click(tid('continue-on-cpu'));
    await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'running'
      && /step \d+ of/.test(document.querySelector('[data-testid="train-progress"]')?.textContent ?? ''),
    null, { timeout: 120_000, what: 'the run did not go on on the CPU' });
    const resumed = await textNow(page, 'train-progress');
    log(`on the CPU: ${resumed}; backend ${await textNow(page, 'backend')}`);
    assert.ok(stepOf(resumed) > kept, `the run started again at step ${stepOf(resumed)}, not after the checkpoint at ${kept}`);
    assert.equal(await textNow(page, 'backend'), 'cpu');
    await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'idle'
      && /^\s*1\b/.test(document.querySelector('[data-testid="learned-count"]')?.textContent ?? ''),
    null, { timeout: 300_000, what: 'the run did not finish on the CPU' });
    assert.equal(await page.getAttribute(tid('task-card'), 'data-learned'), 'true');
    log(`learned on the CPU: ${await textNow(page, 'notice')}`);
    assert.deepEqual(run.problems.pageErrors, [], 'page errors (a panic shows as one)');
  } finally {
    await run.close();
  }
});
