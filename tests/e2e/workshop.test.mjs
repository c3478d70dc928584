// End-to-end: a workshop session in the built app (Trunk's dist/), in headless
// Chromium driven by playwright-core, once with WebGPU (SwiftShader, through
// `--enable-unsafe-webgpu`) and once without it (CPU mode). Each run:
// loads the page; in CPU mode adds two starter packs, one pasted task and a
// fourth pasted task of the same kind as the third, and learns them in turn
// with plain LoRA compared (on SwiftShader's slow WebGPU: one pack, learned);
// the page keeps painting while it trains; reads the R matrices,
// ACC/BWT/FWT and routing accuracy; sees the related task reuse the earlier
// one's sub-experts (the capacity table, and the Try panel's weights lit in
// the earlier task's columns); types a prompt from each learned task and sees
// it routed to that task, and a text like none of them and sees the base
// model answer; generates, alone and compared; downloads a learned task as a
// model folder (CPU mode); reloads and finds everything back; exports the project, clears
// the storage, imports the file and finds everything back again; and runs an
// axe-core accessibility audit. Throughout: no page error, no console error,
// and no request at all after the page first said ready.
//
// usage, from the repository root, after `trunk build --release` (scripts/test.sh
// builds with `--cargo-profile wasm-test`, which shares the wasm tests' build):
//   SHOTS=docs/screenshots node --test --test-reporter=spec tests/e2e/
// (DIST=dist, SHOTS=<folder for screenshots>, CHROMIUM=/usr/bin/chromium;
// E2E_READY_TIMEOUT_MS=300000). The selectors are in CONTRACT.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import {
  READY_TIMEOUT_MS, WEBGPU_ARGS, CPU_ARGS, tid, startServer, tempDir, openApp, reloadApp, timeline,
  text, textNow, numberIn, cards, waitUntil, waitCards, addPack, addText, exportProject, readSafetensors,
  axeSeriousViolations, formatViolations, screenshot, seconds, recipes, readStoredZip,
  setTraining,
} from './lib.mjs';

// learning one task, scoring and saving it (the CPU is slow); E2E_TASK_TIMEOUT_MS to measure a slower machine
const TASK_TIMEOUT_MS = Number(process.env.E2E_TASK_TIMEOUT_MS ?? 6 * 60_000);
// SwiftShader's WebGPU: one task learned and scored takes about 10 minutes on 2 cores (README).
const SWIFTSHADER_TASK_TIMEOUT_MS = Number(process.env.E2E_TASK_TIMEOUT_MS ?? 15 * 60_000);
const GENERATE_TIMEOUT_MS = 5 * 60_000;
const TEST_TIMEOUT_MS = 2 * READY_TIMEOUT_MS + 4 * TASK_TIMEOUT_MS + 2 * GENERATE_TIMEOUT_MS + 5 * 60_000;
const SWIFTSHADER_TEST_TIMEOUT_MS = 2 * READY_TIMEOUT_MS + SWIFTSHADER_TASK_TIMEOUT_MS + 2 * GENERATE_TIMEOUT_MS + 5 * 60_000;

const PACKS = ['devil', 'pronounce'];
const PASTED = { name: 'recipes', paragraphs: recipes(40) };
// More recipes of the same kind: the router cannot tell them from the first
// forty, so this task builds on recipes' sub-experts and adds none.
const RELATED = { name: 'more recipes', paragraphs: recipes(80).slice(40) };
// One prompt per task, in card order: whole samples in the task's own style.
const PROMPTS = [
  // devil: a held-out entry (www/packs/devil/test.txt)
  'NOUMENON, n. That which exists, as distinguished from that which merely seems to exist, the latter being a '
    + 'phenomenon. The noumenon is a bit difficult to locate; it can be apprehended only be a process of reasoning '
    + '-- which is a phenomenon. Nevertheless, the discovery and exposition of noumena offer a rich field for what '
    + 'Lewes calls "the endless variety and excitement of philosophic thought." Hurrah (therefore) for the noumenon!',
  // pronounce: held-out pairs (www/packs/pronounce/test.txt), then a word to pronounce
  'bolivia => B AH0 L IH1 V IY0 AH0\ndowsing => D AW1 S IH0 NG\npassages => P AE1 S AH0 JH AH0 Z\n'
    + 'zirconium => Z ER0 K OW1 N IY0 AH0 M\nabandon =>',
  // the pasted task: one of its paragraphs
  PASTED.paragraphs[11],
];
// Like none of the tasks: a row of digits.
const UNLIKE_ANY_TASK = '3 1 4 1 5 9 2 6 5 3 5 8 9 7 9 3 2 3 8 4 6 2 6 4 3 3 8 3 2 7 9 5 0 2 8 8 4 1 9 7 1 6 9 3 9 9';
const METRICS = ['metric-acc-mose', 'metric-bwt-mose', 'metric-fwt-mose', 'routing-accuracy'];
const SEQ_LORA_METRICS = ['metric-acc-seq-lora', 'metric-bwt-seq-lora', 'metric-fwt-seq-lora'];
const PANELS = ['panel-tasks', 'panel-train', 'panel-remember', 'panel-try'];

let server;
before(async () => { server = await startServer(); });
after(() => server?.close());

/** A metric's text as a number (3 decimals; a typographic minus is allowed), NaN otherwise. */
const asNumber = (s) => (/^[+\-\u2212]?\d+(\.\d+)?$/.test(s) ? Number(s.replace('\u2212', '-')) : NaN);

/** The cells of an R matrix figure: `[{ row, col, text }]`. */
const matrixCells = (page, id) => page.$$eval(`${tid(id)} td[data-row][data-col]`, (tds) => tds.map((td) => ({
  row: Number(td.getAttribute('data-row')), col: Number(td.getAttribute('data-col')), text: td.textContent.trim(),
})));

/** Asserts an R matrix has rows 0..n-1 and numbers in its lower triangle and diagonal; returns its rows as text. */
async function checkMatrix(page, id, n) {
  const cells = await matrixCells(page, id);
  const rows = [...new Set(cells.map((c) => c.row))].sort((a, b) => a - b);
  assert.deepEqual(rows, [...Array(n).keys()], `${id}: expected data-row 0..${n - 1}, found ${JSON.stringify(rows)}`);
  const lines = [];
  for (let i = 0; i < n; i++) {
    const row = [];
    for (let j = 0; j <= i; j++) {
      const cell = cells.find((c) => c.row === i && c.col === j);
      assert.ok(cell, `${id}: no cell at row ${i}, column ${j}`);
      assert.ok(Number.isFinite(asNumber(cell.text)), `${id}: R[${i}][${j}] is ${JSON.stringify(cell.text)}, not a number`);
      row.push(cell.text);
    }
    lines.push(row.join(' '));
  }
  return lines;
}

/** What must survive a reload and an export/import: the cards, learned-count, metrics and the MoSE R matrix. */
async function projectSnapshot(page) {
  const metrics = {};
  for (const id of METRICS) metrics[id] = await textNow(page, id);
  return {
    cards: await cards(page),
    learned: await textNow(page, 'learned-count'),
    metrics,
    matrix: (await matrixCells(page, 'r-matrix-mose')).map((c) => `${c.row},${c.col}=${c.text}`).sort(),
  };
}

/** After a reload or an import: waits (up to 30 s once the cards are there) for the same project, then compares. */
async function expectSameProject(page, expected, after) {
  await waitCards(page, expected.cards.length, `after ${after}: expected ${expected.cards.length} task cards`);
  let found;
  for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 500))) {
    found = await projectSnapshot(page);
    if (util.isDeepStrictEqual(found, expected)) return;
  }
  assert.deepEqual(found, expected, `after ${after}: the project differs from before`);
}

/** Seconds spent in each train-state since `since` (page time), e.g. `running 12.0 s, scoring 30.1 s`. */
async function phases(page, since) {
  const train = (await timeline(page)).states.filter((s) => s.id === 'train-state' && s.at >= since);
  return train.slice(0, -1).map((s, i) => `${s.state} ${((train[i + 1].at - s.at) / 1000).toFixed(1)} s`).join(', ');
}

/** Clicks learn-next and waits until train-state is idle again with learned-count `n`; returns seconds taken and where they went. */
async function learnNext(run, n, timeout) {
  const { page } = run;
  const started = Date.now();
  const since = await page.evaluate(() => performance.now());
  await page.click(tid('learn-next'));
  await waitUntil(page, (k) => {
    const state = document.querySelector('[data-testid="train-state"]')?.getAttribute('data-state');
    const count = (document.querySelector('[data-testid="learned-count"]')?.textContent.match(/\d+/) ?? [])[0];
    return state === 'failed' || (state === 'idle' && count === String(k));
  }, n, { timeout, what: `learning task ${n} did not finish (train-state idle, learned-count ${n})` });
  assert.notEqual(await page.getAttribute(tid('train-state'), 'data-state'), 'failed',
    `learning task ${n} failed: ${await textNow(page, 'error')}`);
  return `${seconds(started)} s (${await phases(page, since)})`;
}

/** Types `prompt` and waits for the router to choose one of the tasks named in `expected`; returns the chosen name. */
async function routeTo(run, prompt, expected, taskCount) {
  const { page } = run;
  // An empty prompt clears the reading, so the bars that appear next are this prompt's.
  await page.fill(tid('prompt'), '');
  await waitUntil(page, () => document.querySelectorAll('[data-testid="route-bar"]').length === 0, null,
    { what: 'the route bars to clear for an empty prompt' });
  await page.fill(tid('prompt'), prompt);
  await waitUntil(page, (k) => document.querySelectorAll('[data-testid="route-bar"]').length === k, taskCount,
    { what: `expected ${taskCount} route bars after typing a prompt` });
  const bars = await page.$$eval(tid('route-bar'), (els) => els.map((e) => ({
    name: e.getAttribute('data-task-name'), chosen: e.getAttribute('data-chosen'), similarity: e.getAttribute('data-similarity'),
  })));
  const routed = await textNow(page, 'routed-task');
  const sims = bars.map((b) => `${b.name} ${b.similarity}${b.chosen === 'true' ? ' (chosen)' : ''}`).join(', ');
  run.log(`prompt from ${expected.join(' or ')} -> routed to ${routed}; similarity: ${sims}`);
  assert.ok(expected.includes(routed), `a prompt from ${expected.join(' or ')} was routed to ${routed} (similarity: ${sims})`);
  const chosen = bars.filter((b) => b.chosen === 'true').map((b) => b.name);
  assert.ok(chosen.includes(routed), `the route bar marked chosen is ${JSON.stringify(chosen)}, not ${routed}`);
  return routed;
}

/**
 * The related task (the fourth) reused the recipes task's sub-experts: the
 * capacity table says so, and a prompt routed to it lights recipes' columns
 * in the Try panel's sub-expert weights. The pair is one kind of text, so a
 * prompt goes to either; the related task's paragraphs are tried until one
 * is routed to it.
 */
async function checkReuse(run, learn) {
  const { page, log } = run;
  const rows = await page.$$eval(`${tid('capacity')} tbody tr`, (trs) => trs.map((tr) => ({
    name: tr.querySelector('th')?.textContent.trim(),
    cells: [...tr.querySelectorAll('td')].map((td) => Number(td.textContent.trim())),
  })));
  log(`capacity: ${rows.map((r) => `${r.name} ${r.cells[0]} new, ${r.cells[1]} reused`).join('; ')}`);
  const row = rows.find((r) => r.name === RELATED.name);
  assert.ok(row, `the capacity table has no row for ${RELATED.name}: ${JSON.stringify(rows)}`);
  const [added, reused] = row.cells;
  assert.equal(added, 0, `${RELATED.name} added ${added} sub-experts; it should build on ${PASTED.name}'s`);
  assert.ok(reused > 0, `${RELATED.name} reused no sub-expert`);
  for (const paragraph of RELATED.paragraphs.slice(0, 8)) {
    const routed = await routeTo(run, paragraph, [PASTED.name, RELATED.name], learn);
    if (routed !== RELATED.name) continue;
    const lit = Number(await page.getAttribute(tid('expert-weights'), 'data-reused'));
    log(`a prompt routed to ${RELATED.name}: ${lit} sub-experts of ${PASTED.name} carry weight; ${await textNow(page, 'reused-experts')}`);
    assert.ok(lit > 0, `a prompt routed to ${RELATED.name} lit no sub-expert of ${PASTED.name}`);
    return;
  }
  assert.fail(`none of eight ${RELATED.name} paragraphs was routed to ${RELATED.name}`);
}

/** Clicks generate and waits for a new `done` (or `failed`) of `generation`, and for `also` to be non-empty. */
async function generate(run, also = []) {
  const { page } = run;
  const finished = (await timeline(page)).states.filter((s) => s.id === 'generation' && (s.state === 'done' || s.state === 'failed')).length;
  const started = Date.now();
  await page.click(tid('generate'));
  await waitUntil(page, ({ k, ids }) => {
    const ends = window.__states.filter((s) => s.id === 'generation' && (s.state === 'done' || s.state === 'failed'));
    const filled = ids.every((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent.trim());
    return ends.length > k && (ends.at(-1).state === 'failed' || filled);
  }, { k: finished, ids: also }, { timeout: GENERATE_TIMEOUT_MS, what: `generating${also.length ? ` with ${also.join(', ')}` : ''}` });
  assert.equal(await page.getAttribute(tid('generation'), 'data-state'), 'done', `generation failed: ${await textNow(page, 'error')}`);
  return seconds(started);
}

async function workshop({ label, args, backend, deviceText, steps, learn, taskTimeout, shotsFull, panels, extraSettings, compare, related, genTokens, packs = PACKS, pasted = true }) {
  const run = await openApp(server.origin, { args, label });
  const { page, log } = run;
  const dir = tempDir();
  try {
    // the device
    assert.equal(await textNow(page, 'backend'), backend, `the backend should be ${backend}`);
    assert.match(await textNow(page, 'device'), deviceText, `the device should say ${deviceText}`);

    // tasks: packs, then a pasted text (and one of the same kind)
    for (const pack of packs) await addPack(page, pack);
    if (pasted) await addText(page, PASTED.name, PASTED.paragraphs.join('\n\n'));
    if (related) await addText(page, RELATED.name, RELATED.paragraphs.join('\n\n'));
    await waitCards(page, packs.length + (pasted ? 1 : 0) + (related ? 1 : 0));
    const names = (await cards(page)).map((c) => c.name);
    if (pasted) assert.equal(names[packs.length], PASTED.name, `the pasted task's card should follow the packs and be named ${PASTED.name}`);
    if (related) assert.equal(names[3], RELATED.name, `the related task's card should be fourth and named ${RELATED.name}`);
    for (const [i, card] of (await page.locator(tid('task-card')).all()).entries()) {
      log(`task ${i + 1}: ${names[i]}: ${await text(card, 'task-samples')}, ${await text(card, 'task-split')}`);
    }

    // settings: few steps, 8 held-out samples, compare with plain LoRA
    await setTraining(page, { 'train-steps': steps, 'train-heldout': 8, ...(extraSettings ?? {}) });
    if (compare) await page.check(tid('compare-lora'));
    else await page.uncheck(tid('compare-lora'));

    // learn the first `learn` tasks in turn
    for (let i = 0; i < learn; i++) {
      const took = await learnNext(run, i + 1, taskTimeout);
      const card = page.locator(tid('task-card')).nth(i);
      assert.equal(await card.getAttribute('data-learned'), 'true', `card ${i + 1} (${names[i]}) is not marked learned`);
      log(`learned ${names[i]} (${steps} steps${compare ? ', compared with plain LoRA' : ''}) in ${took}`);
      if (i === 0) {
        // the page kept painting while the first task trained
        const { states, frames } = await timeline(page);
        const train = states.filter((s) => s.id === 'train-state');
        const started = train.find((s) => s.state === 'running')?.at;
        const finished = train.find((s) => s.state === 'idle' && s.at > (started ?? Infinity))?.at;
        assert.ok(started !== undefined && finished !== undefined, `train-state changes seen: ${JSON.stringify(train)}`);
        const painted = frames.filter((t) => t >= started && t <= finished).length;
        const seconds = (finished - started) / 1000;
        log(`${painted} frames painted in ${seconds.toFixed(1)} s of training: ${(painted / seconds).toFixed(1)} per second`);
        assert.ok(painted >= 3, `only ${painted} frames painted while training (the training loop must yield)`);
        // CPU mode learns in the engine's Web Worker; on WebGPU the page's thread drives the GPU
        const workers = page.workers().length;
        assert.equal(workers, backend === 'cpu' ? 1 : 0, `${workers} dedicated workers on ${backend}`);
      }
    }

    // remember: the R matrices and the metrics
    for (const id of compare ? ['r-matrix-mose', 'r-matrix-seq-lora'] : ['r-matrix-mose']) {
      assert.ok(await page.locator(tid(id)).count(), `no ${id}`);
      log(`${id}: ${(await checkMatrix(page, id, learn)).join(' | ')}`);
    }
    // BWT and FWT compare a task's scores before and after a later task.
    const metrics = learn > 1 ? METRICS : ['metric-acc-mose', 'routing-accuracy'];
    for (const id of compare ? [...metrics, ...SEQ_LORA_METRICS] : metrics) {
      const value = await text(page, id);
      log(`${id}: ${value}`);
      if (id === 'routing-accuracy') assert.match(value, /^\d+(\.\d+)?\s?%$/, `${id} is ${JSON.stringify(value)}`);
      else assert.ok(Number.isFinite(asNumber(value)), `${id} is ${JSON.stringify(value)}, not a number (${learn} tasks are learned)`);
    }

    if (related) await checkReuse(run, learn);

    // try: each learned task's prompt is routed to that task (the recipes
    // prompt to either of the related pair); then generate
    for (let i = 0; i < Math.min(learn, PROMPTS.length); i++) {
      await routeTo(run, PROMPTS[i], i === 2 && related ? [PASTED.name, RELATED.name] : [names[i]], learn);
    }
    // the length of a generation: out of range snaps back, then this run's
    await page.fill(tid('gen-tokens'), '100000');
    await page.locator(tid('gen-tokens')).blur();
    assert.equal(await page.inputValue(tid('gen-tokens')), '512', 'gen-tokens did not snap back to 512');
    await page.fill(tid('gen-tokens'), String(genTokens));
    await page.locator(tid('gen-tokens')).blur();
    assert.equal(await page.inputValue(tid('gen-tokens')), String(genTokens), `gen-tokens did not keep ${genTokens}`);
    // a text like none of the tasks: the base model answers
    await page.fill(tid('prompt'), UNLIKE_ANY_TASK);
    await page.waitForSelector(tid('no-task-matches'), { timeout: 60_000 });
    log(`an unrelated prompt: ${await textNow(page, 'no-task-matches')}`);
    assert.equal(await page.locator(tid('routed-task')).count(), 0, 'a task was chosen for an unrelated prompt');
    if (compare) {
      // The base model answers it as it is: no adapter, nothing merged.
      log(`generated for the unrelated prompt in ${await generate(run)} s`);
      const base = await textNow(page, 'generation-speed');
      assert.doesNotMatch(base, /merged/, `the base model's answer says an adapter was merged: ${JSON.stringify(base)}`);
    }
    // A routed prompt: the chosen sub-experts are folded into the weights.
    await routeTo(run, PROMPTS[0], [names[0]], learn);
    log(`generated in ${await generate(run)} s: ${JSON.stringify((await textNow(page, 'generation')).slice(0, 100))}`);
    assert.ok(await textNow(page, 'generation'), 'the generation is empty');
    const speed = await textNow(page, 'generation-speed');
    log(`generation-speed: ${speed}`);
    assert.match(speed, /merged into the weights/, `routed generation did not merge: ${JSON.stringify(speed)}`);
    const made = Number(speed.match(/^(\d+) tokens/)?.[1]);
    assert.ok(made >= 1 && made <= genTokens, `${made} tokens generated, asked for at most ${genTokens}`);
    const rate = Number(await page.getAttribute(tid('generation-speed'), 'data-decode-tokens-per-second'));
    assert.ok(rate > 0, `the decode rate is ${rate}`);
    if (compare) {
      await page.check(tid('compare-generations'));
      const took = await generate(run, ['generation-base', 'generation-lora']);
      for (const id of ['generation', 'generation-base', 'generation-lora']) {
        const value = await textNow(page, id);
        assert.ok(value, `${id} is empty`);
        log(`${id} (compared, ${took} s): ${JSON.stringify(value.slice(0, 100))}`);
      }
    }

    if (compare) {
      // a learned task as a model of its own: a zip of a Hugging Face folder
      const model = await exportProject(page, dir, 'task-export-model');
      const files = readStoredZip(model.bytes);
      const folder = model.name.replace(/\.zip$/, '');
      assert.deepEqual(Object.keys(files).sort(), ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => `${folder}/${f}`),
        `the model download ${model.name} holds ${Object.keys(files)}`);
      const config = JSON.parse(files[`${folder}/config.json`].toString('utf8'));
      JSON.parse(files[`${folder}/tokenizer.json`].toString('utf8'));
      const meta = readSafetensors(files[`${folder}/model.safetensors`]).header.__metadata__ ?? {};
      assert.equal(meta['mose_lab.task'], names[0], `the exported weights name task ${meta['mose_lab.task']}`);
      log(`downloaded ${model.name}: ${model.bytes.length} bytes, ${config.num_hidden_layers} layers, task ${meta['mose_lab.task']} (${meta['mose_lab.method']})`);
    }

    if (shotsFull) await screenshot(page, shotsFull);
    if (panels) for (const id of PANELS) await screenshot(page, `${id}.png`, tid(id));

    // reload: everything is back
    const saved = await projectSnapshot(page);
    await reloadApp(run);
    await expectSameProject(page, saved, 'a reload');

    // export: a safetensors file holding the project
    const exported = await exportProject(page, dir);
    const { header } = readSafetensors(exported.bytes);
    assert.ok(header.__metadata__?.mose_lab_project, `the export's header has no __metadata__.mose_lab_project: ${Object.keys(header.__metadata__ ?? {})}`);
    assert.match(exported.name, /\.moselab$/, `the export is named ${exported.name}`);
    log(`exported ${exported.name}: ${exported.bytes.length} bytes, ${Object.keys(header).length - 1} tensors`);

    // clear: an empty project
    await page.click(tid('clear-storage'));
    await page.click(tid('confirm-clear'));
    await waitCards(page, 0, 'after clearing the storage: expected no task card');
    await waitUntil(page, () => (document.querySelector('[data-testid="learned-count"]')?.textContent.match(/\d+/) ?? [])[0] === '0',
      null, { what: 'after clearing the storage: learned-count should be 0' });
    log(`cleared: ${await numberIn(page, 'learned-count')} learned, storage: ${await textNow(page, 'storage')}`);

    // import: the same project again
    await page.setInputFiles(tid('import-project'), exported.file);
    await expectSameProject(page, saved, 'importing the export');
    log(`imported ${exported.name}: ${saved.cards.length} tasks, ${saved.learned} learned, metrics as before`);

    // accessibility
    const violations = await axeSeriousViolations(page);
    assert.equal(violations.length, 0, `axe-core: serious or critical violations:\n${formatViolations(violations)}`);
    log('axe-core: no serious or critical violation');

    const problems = [...run.problems.pageErrors, ...run.problems.consoleErrors];
    assert.deepEqual(problems, [], 'page errors or console errors');
    assert.deepEqual(run.net.requests, [], 'network requests after the page said ready');
  } catch (e) {
    const problems = [...run.problems.pageErrors, ...run.problems.consoleErrors];
    if (problems.length) log(`page/console errors so far:\n    ${problems.join('\n    ')}`);
    if (run.net.requests.length) log(`requests after ready so far:\n    ${run.net.requests.join('\n    ')}`);
    const shot = path.join(tempDir(), `${label}-failed.png`);
    await page.screenshot({ path: shot, fullPage: true }).then(() => log(`the page when it failed: ${shot}`), () => {});
    throw e;
  } finally {
    await run.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('a workshop on WebGPU: tasks, learning, remembering, trying, reload, export, import', { timeout: SWIFTSHADER_TEST_TIMEOUT_MS }, () => workshop({
  label: 'webgpu', args: WEBGPU_ARGS, backend: 'wgpu', deviceText: /^WebGPU/, steps: 3, learn: 1,
  taskTimeout: SWIFTSHADER_TASK_TIMEOUT_MS, shotsFull: 'app.png', panels: false,
  // SwiftShader emulates the GPU on the CPU cores, slowly: one task (every
  // task is scored after each, a pass per task and routing), short
  // sequences, small batches and MoSE alone keep this run to a few minutes.
  // The CPU run below learns four, compares with plain LoRA and takes the
  // panel screenshots.
  packs: ['devil'], pasted: false,
  extraSettings: { 'train-batch': 2, 'train-seq-len': 48, 'train-heldout': 3 }, compare: false,
  // Each new token is a forward pass on SwiftShader: a short answer.
  genTokens: 8,
}));

test('the same workshop without WebGPU, in CPU mode', { timeout: TEST_TIMEOUT_MS }, () => workshop({
  label: 'cpu', args: CPU_ARGS, backend: 'cpu', deviceText: /CPU mode/, steps: 3, learn: 4, taskTimeout: TASK_TIMEOUT_MS, shotsFull: 'app-cpu.png', panels: true, compare: true,
  related: true, genTokens: 24,
}));
