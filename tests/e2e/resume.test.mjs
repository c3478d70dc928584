// End-to-end: a run a reload interrupts resumes from its last checkpoint
// (docs/UX.md, "Work survives a reload"). In CPU mode, with one pasted task: start
// learning it, pause (the pause writes a checkpoint to IndexedDB), reload,
// and find the run offered for resuming at the step it stopped; resume it and
// see the task learned. Then check the other way out: an interrupted run can
// be discarded. Last, the page reloads with the network off: the service
// worker's copy serves it.
//
// A second test kills the engine's Web Worker (which learns in CPU mode) mid-run,
// as a panic in it would: the page says so, keeps the last checkpoint, and
// resumes the run on its own thread.
//
// usage, from the repository root, after `trunk build --release` (scripts/test.sh
// builds with `--cargo-profile wasm-test`, which shares the wasm tests' build):
//   node --test --test-reporter=spec tests/e2e/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  READY_TIMEOUT_MS, CPU_ARGS, tid, startServer, openApp, reloadApp, waitUntil, addText, numberIn,
  textNow, weatherReports,
  setTraining,
} from './lib.mjs';

const STEPS = 40;

let server;
before(async () => { server = await startServer(); });
after(() => server?.close());

const trainState = (page) => page.getAttribute(tid('train-state'), 'data-state');

// One pasted task, learned by MoSE alone in STEPS steps.
async function addWeather(page) {
  await addText(page, 'weather', weatherReports(40).join('\n\n'));
  await setTraining(page, { 'train-steps': STEPS });
  await page.uncheck(tid('compare-lora'));
}

async function startAndPause(page) {
  await page.click(tid('learn-next'));
  await waitUntil(page, () => {
    const progress = document.querySelector('[data-testid="train-progress"]')?.textContent ?? '';
    const step = Number((progress.match(/step (\d+) of/) ?? [])[1] ?? 0);
    return document.querySelector('[data-testid="train-state"]')?.dataset.state === 'running' && step >= 2;
  }, null, { timeout: 120_000, what: 'the run did not reach step 2' });
  await page.click(tid('pause'));
  await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'paused',
    null, { timeout: 60_000, what: 'the run did not pause' });
}

test('a run interrupted by a reload resumes from its checkpoint', { timeout: 2 * READY_TIMEOUT_MS + 10 * 60_000 }, async () => {
  const run = await openApp(server.origin, { args: CPU_ARGS, label: 'resume' });
  const { page, log } = run;
  try {
    await addWeather(page);

    await startAndPause(page);
    const paused = await textNow(page, 'train-progress');
    log(`paused: ${paused}`);
    await reloadApp(run);
    await waitUntil(page, () => !!document.querySelector('[data-testid="resume-run"]'), null,
      { what: 'after a reload: no offer to resume the interrupted run' });
    const offer = await textNow(page, 'interrupted');
    log(`after a reload: ${offer}`);
    const at = Number((offer.match(/step (\d+) of (\d+)/) ?? [])[1]);
    assert.ok(at >= 2 && at < STEPS, `the offer names step ${at}: ${offer}`);
    assert.equal(await numberIn(page, 'learned-count'), 0);

    await page.click(tid('resume-run'));
    await waitUntil(page, () => (document.querySelector('[data-testid="train-progress"]')?.textContent ?? '').includes('step'),
      null, { timeout: 120_000, what: 'the resumed run shows no step' });
    const first = await textNow(page, 'train-progress');
    const resumedAt = Number((first.match(/step (\d+) of/) ?? [])[1]);
    log(`resumed: ${first}`);
    assert.ok(resumedAt > at, `the resumed run started again at step ${resumedAt}, not after ${at}`);
    await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'idle'
      && /^\s*1\b/.test(document.querySelector('[data-testid="learned-count"]')?.textContent ?? ''),
    null, { timeout: 300_000, what: 'the resumed run did not finish' });
    assert.equal(await page.getAttribute(tid('task-card'), 'data-learned'), 'true');
    log(`learned after resuming: ${await textNow(page, 'notice')}`);

    // A second task: interrupt it, then discard the interrupted run instead.
    await addText(page, 'more weather', weatherReports(30).reverse().join('\n\n'));
    await startAndPause(page);
    await reloadApp(run);
    await waitUntil(page, () => !!document.querySelector('[data-testid="discard-run"]'), null,
      { what: 'after the second reload: no offer to resume' });
    await page.click(tid('discard-run'));
    await waitUntil(page, () => !document.querySelector('[data-testid="interrupted"]'), null,
      { what: 'the discarded run is still offered' });
    await reloadApp(run);
    assert.equal(await page.locator(tid('interrupted')).count(), 0, 'a discarded run came back after a reload');
    assert.equal(await trainState(page), 'idle');

    // Offline: the service worker holds every file, so the app loads with no
    // network at all, the learned task still there.
    await run.context.setOffline(true);
    await reloadApp(run);
    assert.equal(await numberIn(page, 'learned-count'), 1, 'offline: the learned task is not back');
    log(`offline reload: ready, ${await textNow(page, 'device')}`);
    assert.deepEqual(run.problems.pageErrors, [], 'page errors');
  } finally {
    await run.close();
  }
});

test('a run whose worker dies keeps its checkpoint and goes on on the page', { timeout: READY_TIMEOUT_MS + 10 * 60_000 }, async () => {
  const run = await openApp(server.origin, { args: CPU_ARGS, label: 'worker-dies' });
  const { page, log } = run;
  try {
    await addWeather(page);
    // Pausing writes a checkpoint; then the run goes on in the worker.
    await startAndPause(page);
    await page.click(tid('resume'));
    const workers = page.workers();
    assert.equal(workers.length, 1, `the page runs ${workers.length} workers, not the engine's one`);
    await workers[0].evaluate(() => { setTimeout(() => { throw new Error('killed by the test'); }); });
    await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'failed',
      null, { timeout: 60_000, what: 'the run did not fail when its worker died' });
    const said = await textNow(page, 'error');
    log(`the page says: ${said}`);
    assert.match(said, /worker stopped/);
    assert.match(said, /checkpoint, step \d+ of 40, is kept/);
    await page.click(tid('resume-run'));
    await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'idle'
      && /^\s*1\b/.test(document.querySelector('[data-testid="learned-count"]')?.textContent ?? ''),
    null, { timeout: 300_000, what: 'the run did not finish on the page' });
    log(`learned on the page: ${await textNow(page, 'notice')}`);
    assert.deepEqual(run.problems.pageErrors, [], 'page errors');
  } finally {
    await run.close();
  }
});
