// Writes the service worker, sw.js, into Trunk's staging dir from the template
// www/sw.js: the list of files to precache (every file of the build, and "./"
// for the index) and a cache version (the first 16 hex digits of a SHA-256 over
// the template and every file's name and contents), so that a new build gets a
// new cache and the old one is deleted. Why: the comment at the top of www/sw.js.
//
// Run by Trunk as a post_build hook (Trunk.toml), after index.html is written
// to the staging dir and before the staging dir becomes dist/; `trunk serve`
// runs it on every rebuild too. Trunk passes the staging dir in
// TRUNK_STAGING_DIR. By hand:
//   TRUNK_STAGING_DIR=dist node scripts/sw-manifest.mjs
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const OUT = "sw.js";
// Trunk's own files in dist/, never in the staging dir; skipped so that a run
// by hand on dist/ writes the same sw.js as the hook did.
const SKIP = new Set([OUT, ".trunk-lock", ".stage"]);
// Served models (www/served/README.md) are large and optional: the worker
// keeps one when the page first loads it, never on install.
const SERVED = "served/";
const TEMPLATE = fileURLToPath(new URL("../www/sw.js", import.meta.url));
const VERSION_PLACEHOLDER = "__MOSE_SW_VERSION__";
const FILES_PLACEHOLDER = '["__MOSE_SW_FILES__"]';

function fail(message) {
  console.error(`sw-manifest: ${message}`);
  process.exit(1);
}

const staging = process.env.TRUNK_STAGING_DIR;
if (!staging) fail("TRUNK_STAGING_DIR is not set (run as a Trunk hook, or set it by hand)");
if (!existsSync(join(staging, "index.html"))) fail(`no index.html in ${staging}`);

// Every file under dir, as paths relative to it with forward slashes.
function list(dir, prefix = "") {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name;
    if (SKIP.has(rel) || rel + "/" === SERVED) continue;
    if (entry.isDirectory()) files.push(...list(join(dir, entry.name), rel + "/"));
    else if (entry.isFile()) files.push(rel);
  }
  return files;
}

// Sorted by code unit, so the order (and the hash) is the same on every machine.
const files = list(staging).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

const template = readFileSync(TEMPLATE, "utf8");
const count = (needle) => template.split(needle).length - 1;
if (count(VERSION_PLACEHOLDER) !== 1 || count(FILES_PLACEHOLDER) !== 1) {
  fail(`${TEMPLATE} must hold ${VERSION_PLACEHOLDER} and ${FILES_PLACEHOLDER} once each`);
}

// Each part length-prefixed, so no two different builds hash the same bytes.
const hash = createHash("sha256");
const part = (bytes) => {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(bytes.length));
  hash.update(length).update(bytes);
};
part(Buffer.from(template, "utf8"));
for (const file of files) {
  part(Buffer.from(file, "utf8"));
  part(readFileSync(join(staging, file)));
}
const version = hash.digest("hex").slice(0, 16);

// File names go into the worker as URLs relative to it (it sits at the root of
// the build), so each path segment is percent-encoded.
const urls = ["./", ...files.map((file) => file.split("/").map(encodeURIComponent).join("/"))];
const sw = template
  .replace(VERSION_PLACEHOLDER, () => version)
  .replace(FILES_PLACEHOLDER, () => JSON.stringify(urls));
writeFileSync(join(staging, OUT), sw);
console.log(`sw-manifest: ${OUT} ${version}, ${urls.length} URLs precached`);
