// End-to-end: choosing the base model in the built app (Trunk's dist/), in
// headless Chromium (CPU mode) driven by playwright-core. With one pasted
// task on the page (kept through every change of model):
// - files from disk that are not a model (a text file named .gguf, a folder
//   without its tokenizer.json) are refused with a message, and the page keeps
//   its model and its task;
// - the embedded model's own folder opened from disk becomes the base model;
// - SmolLM2's GGUF opened from disk and kept in the browser loads again after
//   a reload; once its kept files are deleted, a reload starts on the
//   embedded model with the project (made on SmolLM2) kept aside, and
//   opening the file again brings the project back;
// - SmolLM2-135M-Instruct, served beside the app (scripts/serve-models.sh),
//   becomes the base model, its greedy continuation of "The capital of France
//   is" starts " Paris." as natively (tests/model.rs); the task is learned on
//   it (two steps), a paragraph of it is routed to it and generated from,
//   and a prompt like no task goes to the base model (the base model box
//   says whether the router has statistics of the model's own text: the
//   embedded model's, not SmolLM2's); the model can then no longer change;
//   a reload loads SmolLM2 again with the learned task. The page's memory
//   is printed after each stage;
// - the project, exported and imported on the embedded model, is refused with
//   a message naming both models.
// No page error, no console error.
//
// usage, from the repository root, after scripts/serve-models.sh and
// `trunk build --release` (scripts/test.sh does both):
//   node --test --test-reporter=spec tests/e2e/base-model.test.mjs
// (DIST=dist, CHROMIUM=/usr/bin/chromium). The selectors are in CONTRACT.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  READY_TIMEOUT_MS, CPU_ARGS, dist, tid, startServer, openApp, reloadApp, cards, text, textNow,
  waitUntil, waitCards, addText, errorText, exportProject, seconds, weatherReports, screenshot,
  setTraining,
} from './lib.mjs';

// Downloading, expanding and warming up SmolLM2 in a page on the CPU.
const LOAD_TIMEOUT_MS = Number(process.env.E2E_MODEL_TIMEOUT_MS ?? 5 * 60_000);
const GENERATE_TIMEOUT_MS = 3 * 60_000;
// Reading the task, two steps and scoring on the CPU in a page.
const TASK_TIMEOUT_MS = Number(process.env.E2E_TASK_TIMEOUT_MS ?? 10 * 60_000);
const TEST_TIMEOUT_MS = 3 * READY_TIMEOUT_MS + 3 * LOAD_TIMEOUT_MS + 2 * GENERATE_TIMEOUT_MS + TASK_TIMEOUT_MS;
const TASK = { name: 'weather', text: weatherReports(40).join('\n\n') };
const SERVED = path.join(dist, 'served', 'index.json');
// The base model box's line when the router has the model's own text.
const KNOWS_OWN_TEXT = /^The router knows this model's own text \(1024 texts it wrote/;
// ... and when it judges "none of these" among the tasks alone.
const ALONE = /^The router judges "none of these" among your learned tasks alone/;

let server;
before(async () => { server = await startServer(); });
after(() => server?.close());

/** Chooses `files` (paths) in the model file input. */
const openFromDisk = (page, files) => page.setInputFiles(tid('base-file'), files);

/** Waits until the base model's description matches `pattern`, or an error shows. */
async function waitBase(page, pattern, what, timeout = LOAD_TIMEOUT_MS) {
  await waitUntil(page, ({ sel, err, source }) => {
    const name = document.querySelector(sel)?.textContent ?? '';
    const error = document.querySelector(err)?.textContent ?? '';
    return new RegExp(source).test(name) || error.length > 0;
  }, { sel: tid('base-model-name'), err: tid('error'), source: pattern.source }, { timeout, what });
  assert.equal(await errorText(page), '', `${what}: no error`);
  assert.match(await textNow(page, 'base-model-name'), pattern);
}

/** Waits for an error message and returns it. */
async function waitError(page, what) {
  await waitUntil(page, (sel) => (document.querySelector(sel)?.textContent ?? '').length > 0,
    tid('error'), { timeout: 60_000, what });
  return errorText(page);
}

test('the base model: refused files, a folder and a GGUF from disk, SmolLM2 served (CPU mode)',
  { timeout: TEST_TIMEOUT_MS }, async () => {
    const run = await openApp(server.origin, { args: CPU_ARGS, label: 'base model' });
    const { page, log } = run;
    try {
      assert.match(await text(page, 'base-model-name'), /^model \(embedded, 2\.\d M weights\)$/);
      assert.match(await textNow(page, 'base-model-router'), KNOWS_OWN_TEXT, 'the embedded model ships its statistics');
      log(await textNow(page, 'base-model-memory'));
      await addText(page, TASK.name, TASK.text);
      await page.click(`${tid('base-change')} > summary`);

      // Not a model: refused, nothing changes.
      const scratch = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'mose-base-'));
      const fake = path.join(scratch, 'notes.gguf');
      fs.writeFileSync(fake, 'shopping: milk, eggs, bread\n');
      await openFromDisk(page, fake);
      const notGguf = await waitError(page, 'a text file named .gguf');
      assert.match(notGguf, /notes cannot be the base model: .*not a GGUF model/, notGguf);
      const model = path.join(dist, 'model');
      const folder = ['config.json', 'model.safetensors'].map((f) => path.join(model, f));
      await openFromDisk(page, folder); // the error clears when files are chosen
      assert.match(await waitError(page, 'a folder without tokenizer.json'), /tokenizer\.json is missing/);
      assert.match(await textNow(page, 'base-model-name'), /^model \(embedded/);
      assert.deepEqual((await cards(page)).map((c) => c.name), [TASK.name]);

      // A Hugging Face folder from disk (the embedded model's own files).
      const tokenizer = path.join(model, 'tokenizer.json');
      await openFromDisk(page, [...folder, tokenizer]);
      await waitBase(page, /^model from disk \(from disk, not kept, 2\.\d M weights\)$/, 'the folder from disk');
      assert.deepEqual((await cards(page)).map((c) => c.name), [TASK.name], 'the task is kept');

      // SmolLM2's GGUF from disk, kept in this browser: a reload loads it again.
      assert.ok(fs.existsSync(SERVED), `${SERVED}: run scripts/serve-models.sh before building`);
      const gguf = path.join(dist, 'served', JSON.parse(fs.readFileSync(SERVED, 'utf8'))[0].file);
      await page.check(tid('base-keep'));
      let started = Date.now();
      await openFromDisk(page, gguf);
      const fromDisk = /^SmolLM2-135M-Instruct\.Q4_1 \(from disk, kept in this browser, 134\.5 M weights\)$/;
      await waitBase(page, fromDisk, 'the GGUF from disk');
      // A GGUF alone carries no statistics of the model's own text.
      assert.match(await textNow(page, 'base-model-router'), ALONE, 'a GGUF alone');
      assert.match(await text(page, 'base-kept', 60_000), /^Kept in this browser: 98 MB/);
      log(`SmolLM2 from disk in ${seconds(started)} s; ${await textNow(page, 'base-model-memory')}`);
      await reloadApp(run);
      assert.match(await text(page, 'base-model-name'), fromDisk);
      assert.equal(await errorText(page), '');
      assert.deepEqual((await cards(page)).map((c) => c.name), [TASK.name], 'the task after a reload');
      // Its files deleted: a reload starts on the embedded model and keeps
      // the project (made on SmolLM2) aside; opening the file again brings it back.
      await page.click(tid('base-forget'));
      await waitUntil(page, (sel) => !document.querySelector(sel), tid('base-kept'),
        { timeout: 30_000, what: 'the kept files deleted' });
      await reloadApp(run);
      assert.match(await text(page, 'base-model-name'), /^model \(embedded/);
      const aside = await errorText(page);
      assert.match(aside, /SmolLM2-135M-Instruct\.Q4_1, could not be loaded: .*open it again\. The embedded model is used instead/, aside);
      assert.deepEqual(await cards(page), [], 'the project is kept aside');
      await page.click(`${tid('base-change')} > summary`);
      await openFromDisk(page, gguf);
      await waitBase(page, /^SmolLM2-135M-Instruct\.Q4_1 \(from disk, not kept/, 'the same file opened again');
      assert.deepEqual((await cards(page)).map((c) => c.name), [TASK.name], 'the project kept aside is back');

      // SmolLM2, served by the app.
      started = Date.now();
      await page.click(`${tid('base-served')}[data-model="SmolLM2-135M-Instruct"]`);
      await waitBase(page, /^SmolLM2-135M-Instruct \(served by this app, 134\.5 M weights\)$/, 'SmolLM2 served');
      // Served without statistics of its own text (docs/BENCHMARK.md: they cost it routing).
      assert.match(await textNow(page, 'base-model-router'), ALONE, 'SmolLM2 served');
      log(`SmolLM2 loaded in ${seconds(started)} s; ${await textNow(page, 'base-model-memory')}`);
      await screenshot(page, 'base-model.png', tid('base-model'));
      assert.deepEqual((await cards(page)).map((c) => c.name), [TASK.name], 'the task on SmolLM2');

      await page.fill(tid('prompt'), 'The capital of France is');
      await page.check(tid('gen-greedy'));
      await page.fill(tid('gen-tokens'), '2');
      await page.dispatchEvent(tid('gen-tokens'), 'change');
      started = Date.now();
      await page.click(tid('generate'));
      await waitUntil(page, (sel) => document.querySelector(sel)?.getAttribute('data-state') === 'done',
        tid('generation'), { timeout: GENERATE_TIMEOUT_MS, what: 'SmolLM2 generating' });
      const answer = await page.$eval(tid('generation'), (o) => o.textContent);
      log(`greedy continuation ${JSON.stringify(answer)} in ${seconds(started)} s`);
      assert.match(answer, /^\s?Paris\./, 'the same greedy tokens as natively');

      // Learn the task on SmolLM2, CI-sized: two steps of one short sequence.
      await setTraining(page, { 'train-steps': 2, 'train-batch': 1, 'train-seq-len': 32, 'train-heldout': 2 });
      await page.uncheck(tid('compare-lora'));
      started = Date.now();
      await page.click(tid('learn-next'));
      await waitUntil(page, () => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'idle'
        && /^\s*1\b/.test(document.querySelector('[data-testid="learned-count"]')?.textContent ?? ''),
      null, { timeout: TASK_TIMEOUT_MS, what: 'SmolLM2 learning one task' });
      assert.equal(await errorText(page), '');
      log(`learned ${TASK.name} on SmolLM2 in ${seconds(started)} s; ${await textNow(page, 'base-model-memory')}`);
      await page.fill(tid('prompt'), TASK.text.split('\n\n')[3]);
      assert.equal(await text(page, 'routed-task', 60_000), TASK.name);
      await page.uncheck(tid('gen-greedy'));
      await page.click(tid('generate'));
      await waitUntil(page, (sel) => document.querySelector(sel)?.getAttribute('data-state') === 'done',
        tid('generation'), { timeout: GENERATE_TIMEOUT_MS, what: 'SmolLM2 with the task generating' });
      log(`routed to ${TASK.name}, generated ${JSON.stringify(await textNow(page, 'generation'))}`);
      // A prompt like no learned task goes to the base model.
      await page.fill(tid('prompt'), 'The capital of France is');
      await page.waitForSelector(tid('no-task-matches'), { timeout: 60_000 });
      log(`an unrelated prompt: ${await textNow(page, 'no-task-matches')}`);
      // The base model cannot change under learned tasks.
      assert.match(await textNow(page, 'base-model-locked'), /only before the first task is learned/);

      await reloadApp(run);
      assert.match(await text(page, 'base-model-name'), /^SmolLM2-135M-Instruct \(served/);
      assert.deepEqual((await cards(page)).map((c) => c.name), [TASK.name], 'the task after a reload');
      assert.equal(await page.getAttribute(tid('task-card'), 'data-learned'), 'true', 'learned after a reload');
      log(`after the reload: ${await textNow(page, 'base-model-memory')}`);

      // A project is bound to its base model: exported from SmolLM2, it is
      // refused on the embedded model with a message naming both.
      const exported = await exportProject(page, scratch);
      await page.click(tid('clear-storage'));
      await page.click(tid('confirm-clear'));
      await waitCards(page, 0, 'after clearing the storage');
      await page.click(`${tid('base-change')} > summary`);
      await page.click(tid('base-embedded'));
      await waitBase(page, /^model \(embedded/, 'back to the embedded model');
      await page.setInputFiles(tid('import-project'), exported.file);
      const refused = await waitError(page, 'a SmolLM2 project imported on the embedded model');
      assert.match(refused, /trained on the base model "SmolLM2-135M-Instruct".*not on "model".*choose that model under "Change the base model"/, refused);
      assert.deepEqual(await cards(page), [], 'nothing imported');
      assert.deepEqual(run.problems.pageErrors, []);
      assert.deepEqual(run.problems.consoleErrors, []);
    } finally {
      await run.close();
    }
  });
