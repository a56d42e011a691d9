// The npm package (static/package.json): `npm pack` makes a tarball that
// installs into a fresh folder, whose entry points import in Node and whose
// type declarations check with tsc against a TypeScript application
// (sdk-package/usage.ts). Without npm: skipped, but failed on CI (CI=true).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { devDepsOr } from './dev-deps.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const STATIC = join(ROOT, 'static');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const hasNpm = spawnSync(NPM, ['--version'], { stdio: 'ignore' }).status === 0;

/** The files the package ships: the client's modules and their imports, no page code. */
const SHIPPED = [
  'js/client-id.js', 'js/connection.js', 'js/conversation.js', 'js/names.js', 'js/outbox.js', 'js/watchdog.js',
  'package.json', 'README.md',
  'sdk/index.d.ts', 'sdk/index.js', 'sdk/react.d.ts', 'sdk/react.js', 'sdk/store.js', 'sdk/vue.d.ts', 'sdk/vue.js',
  'shared/backoff.js', 'shared/socket.js',
];

let work = null;
let app = null;
let packed = null;

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

before(() => {
  if (!hasNpm) return;
  work = mkdtempSync(join(tmpdir(), 'imserver-client-'));
  [packed] = JSON.parse(run(NPM, ['pack', '--json', '--pack-destination', work], STATIC));
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  run(NPM, ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock', join(work, packed.filename)], app);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function npmOr(t) {
  if (hasNpm) return true;
  if (process.env.CI === 'true') assert.fail('npm is not installed (CI=true: the package test may not be skipped)');
  t.skip('npm is not installed');
  return false;
}

/** Lends the app the repository's copy of a dev dependency (React, Vue, ...), as if installed beside. */
function lend(name) {
  const target = join(app, 'node_modules', name);
  mkdirSync(dirname(target), { recursive: true });
  try {
    symlinkSync(join(ROOT, 'node_modules', name), target, 'dir');
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
}

test('npm pack ships the client and its imports, nothing of the page', (t) => {
  if (!npmOr(t)) return;
  assert.equal(packed.name, 'imserver-client');
  assert.deepEqual(packed.files.map((f) => f.path).sort(), [...SHIPPED].sort());
});

test('installed from the tarball, the package imports in Node: ChatConnection, React and Vue entries', (t) => {
  if (!npmOr(t) || !devDepsOr(t, ['react', 'vue'])) return;
  lend('react');
  lend('vue');
  const script = `
    import { ChatConnection, chatStore } from 'imserver-client';
    import { useChat as useReact } from 'imserver-client/react';
    import { useChat as useVue } from 'imserver-client/vue';
    const conn = new ChatConnection({
      reconnect: { base: 1, factor: 2, cap: 30, attempts: 10, stable_after: 10, connect_timeout: 10 },
      outbox_limit: 5, url: 'ws://chat.test/ws', storage: null, window: null, document: null,
    });
    let deep = 'exported';
    try { await import('imserver-client/js/app.js'); } catch (err) { deep = err.code; }
    console.log(JSON.stringify({
      state: conn.state, store: chatStore(conn).getSnapshot().state,
      react: typeof useReact, vue: typeof useVue, deep,
    }));`;
  const out = JSON.parse(run(process.execPath, ['--input-type=module', '-e', script], app));
  assert.deepEqual(out, {
    state: 'stopped', store: 'stopped', react: 'function', vue: 'function', deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
  });
});

test('the type declarations check with tsc against a TypeScript application', (t) => {
  if (!npmOr(t) || !devDepsOr(t, ['typescript', 'vue'])) return;
  lend('vue');
  for (const name of ['usage.ts', 'tsconfig.json']) copyFileSync(join(HERE, 'sdk-package', name), join(app, name));
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app],
    { cwd: app, encoding: 'utf8' });
  assert.equal(tsc.status, 0, `tsc found errors:\n${tsc.stdout}${tsc.stderr}`);
});
