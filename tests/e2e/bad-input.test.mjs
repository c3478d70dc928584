// End-to-end: bad input in the built app (Trunk's dist/), in headless Chromium
// (CPU mode) driven by playwright-core. With one good pasted task on the page,
// it offers an empty task, a binary file, a 50 MB file, a corrupt project file,
// a safetensors file that is not a MoSE Lab project, and a project from a newer
// MoSE Lab; each must be refused with a message a person can act on in the
// `error` region, without a page error and without losing the good task,
// which is still there after a reload. Last, a stored project damaged in
// the browser's storage: the page says so and exports its bytes unchanged.
//
// usage, from the repository root, after `trunk build --release` (scripts/test.sh
// builds with `--cargo-profile wasm-test`, which shares the wasm tests' build):
//   node --test --test-reporter=spec tests/e2e/
// (DIST=dist, CHROMIUM=/usr/bin/chromium, E2E_READY_TIMEOUT_MS=300000). The
// selectors are in CONTRACT.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  READY_TIMEOUT_MS, CPU_ARGS, tid, startServer, tempDir, openApp, reloadApp, cards, waitUntil,
  addText, fillNewTask, exportProject, errorText, readSafetensors, writeSafetensors, weatherReports,
} from './lib.mjs';

const GOOD = { name: 'weather', text: weatherReports(40).join('\n\n') };

let server;
before(async () => { server = await startServer(); });
after(() => server?.close());

/** `n` random bytes with NULs sprinkled in: not text by any reading. */
function binaryBytes(n) {
  const bytes = crypto.randomBytes(n);
  for (let i = 0; i < n; i += 97) bytes[i] = 0;
  return bytes;
}

/** A real export with its project's `format_version` rewritten to 99, the header length kept valid. */
function fromNewerVersion(exported) {
  const { header, data } = readSafetensors(exported);
  const json = header.__metadata__?.mose_lab_project;
  assert.equal(typeof json, 'string', 'the export has no __metadata__.mose_lab_project');
  assert.equal(JSON.parse(json).format_version, 1, 'the export is not format_version 1');
  const newer = json.replace(/"format_version"\s*:\s*1\b/, '"format_version":99');
  assert.equal(JSON.parse(newer).format_version, 99, 'could not rewrite format_version');
  header.__metadata__.mose_lab_project = newer;
  return writeSafetensors(JSON.stringify(header), data);
}

test('bad input is refused with a message and loses nothing', { timeout: 2 * READY_TIMEOUT_MS + 10 * 60_000 }, async () => {
  const run = await openApp(server.origin, { args: CPU_ARGS, label: 'bad input' });
  const { page, log } = run;
  const dir = tempDir();
  try {
    await addText(page, GOOD.name, GOOD.text);
    const good = await cards(page);
    assert.deepEqual(good.map((c) => c.name), [GOOD.name]);
    const exported = await exportProject(page, dir);

    // Each case: do it, wait for a new message in `error`, check the message
    // and that nothing was lost. Consecutive cases expect different messages,
    // so a new message is one that differs from the one before.
    const refused = async (what, action, message) => {
      const before = await errorText(page);
      await action();
      await waitUntil(page, (prev) => {
        const now = document.querySelector('[data-testid="error"]')?.textContent.trim() ?? '';
        return now !== '' && now !== prev;
      }, before, { what: `${what}: no message in the error region` });
      const shown = await errorText(page);
      log(`${what}: ${shown}`);
      assert.match(shown, message, `${what}: the message does not say ${message}`);
      assert.deepEqual(await cards(page), good, `${what}: the task cards changed`);
      assert.deepEqual(run.problems.pageErrors, [], `${what}: page errors`);
    };
    const importFile = (name, buffer) => () => page.setInputFiles(tid('import-project'),
      { name, mimeType: 'application/octet-stream', buffer });

    await refused('an empty task', async () => {
      assert.ok(await page.isEnabled(tid('add-text')), 'add-text must stay enabled with an empty text, and say what is wrong');
      await fillNewTask(page, 'empty', '');
    }, /\S/);
    await refused('a corrupt project file', importFile('broken.moselab', crypto.randomBytes(4096)),
      /not a MoSE Lab project/i);
    await refused('a binary file', () => page.setInputFiles(tid('task-file'),
      { name: 'photo.txt', mimeType: 'text/plain', buffer: binaryBytes(4096) }), /binary|not (plain )?text/i);
    await refused('a safetensors file that is not a project',
      importFile('other.safetensors', writeSafetensors('{"__metadata__":{"x":"y"}}')), /not a MoSE Lab project/i);
    // 50 MB: over playwright's limit for a buffer, so from a file
    const big = path.join(dir, 'big.txt');
    fs.writeFileSync(big, Buffer.alloc(50 * 1024 * 1024, 'a'));
    await refused('a 50 MB file', () => page.setInputFiles(tid('task-file'), big),
      /too (large|big)|over the limit|\d\s*(bytes|[KMG]i?B)\b/i);
    await refused('a project from a newer MoSE Lab', importFile('newer.moselab', fromNewerVersion(exported.bytes)),
      /newer\s+(version\s+of\s+)?MoSE Lab/i);

    await reloadApp(run);
    await waitUntil(page, (n) => document.querySelectorAll('[data-testid="task-card"]').length === n, good.length,
      { what: 'after a reload: the good task card should be back' });
    assert.deepEqual((await cards(page)).map((c) => c.name), [GOOD.name], 'after a reload: the task cards');
    assert.deepEqual(run.problems.pageErrors, [], 'page errors');
    log(`after a reload: ${GOOD.name} is still there`);

    // A stored project this build cannot open (damaged in storage): the page
    // starts empty, says so, and keeps the bytes aside for export.
    const damaged = crypto.randomBytes(2048);
    await page.evaluate((bytes) => new Promise((resolve, reject) => {
      const open = indexedDB.open('mose-lab');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const tx = open.result.transaction('files', 'readwrite');
        tx.objectStore('files').put(new Uint8Array(bytes), 'project');
        tx.oncomplete = () => { open.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
    }), [...damaged]);
    await reloadApp(run);
    const shown = await errorText(page);
    log(`a damaged stored project: ${shown}`);
    assert.match(shown, /could not be opened.*kept aside/is, 'the damaged stored project is not reported as kept aside');
    assert.equal((await cards(page)).length, 0, 'a damaged stored project should leave an empty page');
    const kept = await exportProject(page, dir, 'export-unreadable');
    assert.ok(kept.bytes.equals(damaged), 'the exported unreadable project differs from the stored bytes');
    assert.deepEqual(run.problems.pageErrors, [], 'page errors');
  } finally {
    await run.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
