// End-to-end: a pasted task with a sample longer than the sequence length
// (docs/UX.md, "Long samples"). In CPU mode: a `prompt => answer` task whose
// one answer alone is longer than any sequence is added, not refused; its
// card warns that the answer is cut, and a long plain text is learned in
// windows, which its card notes. The task list is edited (a rename made
// unique, a move, a delete and its undo) before the tasks are learned (a
// few steps, MoSE beside plain LoRA) and the project exported; the native
// command then learns one more task on that export (`mose train
// --continue`) and keeps its two learned tasks' rows. The command is
// MOSE_BIN, or target/debug/mose (scripts/test.sh builds it in its native
// section).
//
// usage, from the repository root, after `trunk build --release` (scripts/test.sh
// builds with `--cargo-profile wasm-test`, which shares the wasm tests' build):
//   node --test --test-reporter=spec tests/e2e/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  READY_TIMEOUT_MS, CPU_ARGS, tid, startServer, tempDir, openApp, cards, waitUntil, addText,
  exportProject, errorText, numberIn, weatherReports,
  setTraining,
} from './lib.mjs';

const STEPS = 4;

let server;
before(async () => { server = await startServer(); });
after(() => server?.close());

/** Question => answer lines about the weather, the last answer far longer than any sequence. */
function longPairs() {
  const pairs = weatherReports(12).map((report, i) => `report ${i + 1} => ${report.split('.')[1].trim()}`);
  pairs.push(`the whole week => ${weatherReports(14).join(' ')}`);
  return pairs.join('\n');
}

test('a long pasted sample is cut or split with a warning, and learned', { timeout: READY_TIMEOUT_MS + 10 * 60_000 }, async () => {
  const run = await openApp(server.origin, { args: CPU_ARGS, label: 'long sample' });
  const { page, log } = run;
  const dir = tempDir();
  try {
    await addText(page, 'forecasts', longPairs());
    await addText(page, 'almanac', [weatherReports(30).join(' '), ...weatherReports(8)].join('\n\n'));
    assert.equal(await errorText(page), '', 'a long sample was refused');
    const warnings = await page.$$eval(tid('task-card'), (els) => els.map((card) => [...card.querySelectorAll('[data-testid="task-warning"]')]
      .map((w) => w.textContent.trim())));
    log(`warnings: ${JSON.stringify(warnings)}`);
    assert.ok(warnings[0].some((w) => /1 answer is longer than \d+ tokens allow and cut/.test(w)),
      `the pair task's card does not warn of its cut answer: ${warnings[0]}`);
    const notes = await page.$$eval(tid('task-card'), (els) => els.map((card) => [...card.querySelectorAll('[data-testid="task-note"]')]
      .map((n) => n.textContent.trim())));
    assert.ok(notes[1].some((n) => /\d+ texts? (is|are) longer than \d+ tokens and learned in windows/.test(n)),
      `the text task's card does not say its long texts are learned in windows: ${notes[1]}`);
    assert.ok(!warnings[1].some((w) => /windows/.test(w)), 'windows are a note, not a warning');

    // The task list edits before anything is learned: rename, move, delete, undo.
    const names = async () => (await cards(page)).map((c) => c.name);
    const card = (i) => page.locator(tid('task-card')).nth(i);
    await card(1).locator(tid('task-rename')).click();
    await card(1).locator(tid('task-rename-input')).fill('forecasts');
    await card(1).locator(tid('task-rename-input')).press('Enter');
    await waitUntil(page, () => document.querySelectorAll('[data-testid="task-card"]')[1]
      ?.getAttribute('data-task-name') === 'forecasts 2', null, { what: 'the rename did not make the name unique' });
    await card(1).locator(tid('task-up')).click();
    await waitUntil(page, () => document.querySelector('[data-testid="task-card"]')
      ?.getAttribute('data-task-name') === 'forecasts 2', null, { what: 'the task did not move up' });
    await card(0).locator(tid('task-delete')).click();
    await waitUntil(page, () => document.querySelectorAll('[data-testid="task-card"]').length === 1, null,
      { what: 'the task was not deleted' });
    await page.click(tid('undo'));
    await waitUntil(page, () => document.querySelectorAll('[data-testid="task-card"]').length === 2, null,
      { what: 'undo did not bring the task back' });
    assert.deepEqual(await names(), ['forecasts 2', 'forecasts']);
    await card(0).locator(tid('task-down')).click();
    await card(1).locator(tid('task-rename')).click();
    await card(1).locator(tid('task-rename-input')).fill('almanac');
    await card(1).locator(tid('task-rename-input')).press('Enter');
    await waitUntil(page, () => document.querySelectorAll('[data-testid="task-card"]')[1]
      ?.getAttribute('data-task-name') === 'almanac', null, { what: 'the second rename did not take' });
    assert.deepEqual(await names(), ['forecasts', 'almanac']);
    assert.equal(await errorText(page), '', 'an edit was refused');

    await setTraining(page, { 'train-steps': STEPS });
    assert.ok(await page.isChecked(tid('compare-lora')), 'plain LoRA is compared by default');
    for (const learned of [1, 2]) {
      await page.click(tid('learn-next'));
      await waitUntil(page, (n) => document.querySelector('[data-testid="train-state"]')?.dataset.state === 'idle'
        && new RegExp(`^\\s*${n}\\b`).test(document.querySelector('[data-testid="learned-count"]')?.textContent ?? ''),
      learned, { timeout: 300_000, what: `task ${learned} was not learned` });
    }
    assert.equal(await numberIn(page, 'learned-count'), 2);
    assert.deepEqual((await cards(page)).map((c) => c.learned), ['true', 'true']);

    const exported = await exportProject(page, dir);
    log(`exported ${exported.name}: ${exported.bytes.length} bytes`);

    // The app's project, continued by the native command with one more task.
    const mose = path.resolve(process.env.MOSE_BIN ?? 'target/debug/mose');
    assert.ok(fs.existsSync(mose), `no ${mose}: build it with \`cargo build --features cli --bin mose\` or set MOSE_BIN`);
    fs.writeFileSync(path.join(dir, 'colours.txt'),
      'red and blue => purple\nred and yellow => orange\nblue and yellow => green\nblack and white => grey\n');
    const cli = (...args) => execFileSync(mose, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const started = Date.now();
    const results = JSON.parse(cli('train', '--continue', exported.file, 'colours=colours.txt', '--steps', '2',
      '--max-heldout', '2', '--json'));
    log(`mose train --continue on the export: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(results.map((r) => r.method), ['mose', 'seq-lora'], 'the app\'s methods');
    for (const r of results) {
      assert.deepEqual(r.report.tasks, ['forecasts', 'almanac', 'colours']);
      assert.equal(r.report.routed.length, 3, `${r.method}: three rows after three tasks`);
    }
    assert.deepEqual(run.problems.pageErrors, [], 'page errors');
  } finally {
    await run.close();
  }
});
