// Prints how long a training step of the embedded model takes in the built app
// in headless Chromium, on WebGPU (SwiftShader where there is no GPU) or in CPU
// mode: one pasted task learned by MoSE alone, batch 2 x 48 (the setting of
// `scripts/bench.sh embedded wgpu`), and the seconds between each step and the
// next as the train panel shows them. The first steps compile kernels, so the
// rate is taken over the steps after `WARMUP`, to set beside `mose bench`
// (docs/PERFORMANCE.md, "Browser WebGPU against native wgpu").
//
// usage, from the repository root, after `trunk build --release`:
//   node benches/browser_train.mjs        (DIST=dist, CHROMIUM=/usr/bin/chromium)
//   BACKEND=cpu node benches/browser_train.mjs   (Chromium without WebGPU: the app's CPU mode)
import {
  CPU_ARGS, WEBGPU_ARGS, tid, startServer, openApp, waitUntil, addText, setTraining, weatherReports,
} from '../tests/e2e/lib.mjs';

const STEPS = 10;
const WARMUP = 4;
const BATCH = 2;
const SEQ_LEN = 48;

// In the page: when each step first shows in the train panel's progress.
function recordSteps() {
  window.__steps = [];
  new MutationObserver(() => {
    const text = document.querySelector('[data-testid="train-progress"]')?.textContent ?? '';
    const step = Number((text.match(/step (\d+) of/) ?? [])[1] ?? 0);
    const last = window.__steps[window.__steps.length - 1];
    if (step > 0 && (!last || last.step !== step)) window.__steps.push({ step, at: performance.now() });
  }).observe(document, { subtree: true, childList: true, characterData: true });
}

const server = await startServer();
const backend = process.env.BACKEND === 'cpu' ? 'cpu' : 'webgpu';
const run = await openApp(server.origin, { args: backend === 'cpu' ? CPU_ARGS : WEBGPU_ARGS, label: 'train', init: recordSteps });
try {
  const { page, log } = run;
  await addText(page, 'weather', weatherReports(60).join('\n\n'));
  await setTraining(page, { 'train-steps': STEPS, 'train-batch': BATCH, 'train-seq-len': SEQ_LEN });
  await page.uncheck(tid('compare-lora'));
  await page.click(tid('learn-next'));
  await waitUntil(page, (n) => (window.__steps.at(-1)?.step ?? 0) >= n, STEPS,
    { timeout: 1_800_000, what: `the run did not reach step ${STEPS}` });
  const steps = await page.evaluate(() => window.__steps);
  for (let i = 1; i < steps.length; i++) {
    log(`step ${steps[i].step}: ${((steps[i].at - steps[i - 1].at) / 1000).toFixed(2)} s after step ${steps[i - 1].step}`);
  }
  const from = steps.find((s) => s.step === WARMUP);
  const to = steps.at(-1);
  const perStep = (to.at - from.at) / 1000 / (to.step - from.step);
  log(`${backend}: MoSE, batch ${BATCH} x ${SEQ_LEN}: ${perStep.toFixed(3)} s per step over steps ${WARMUP + 1}-${to.step}, `
    + `${((BATCH * SEQ_LEN) / perStep).toFixed(0)} tokens/s`);
} finally {
  await run.close();
  await server.close();
}
