/**
 * The tests' npm packages (React, Vue, jsdom, TypeScript: the root
 * package.json, which `make test-js` installs into node_modules/). A test
 * that needs them is skipped when they are missing, except on CI (CI=true),
 * where it fails.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Whether `names` can all be found; if not, skips `t` (or fails it on CI). */
export function devDepsOr(t, names) {
  const missing = names.filter((name) => {
    try {
      require.resolve(name);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return true;
  const message = `${missing.join(', ')} not installed: run make test-js (npm ci)`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: this test may not be skipped)`);
  t.skip(message);
  return false;
}

/**
 * A jsdom window as the globals a UI framework looks for (window, document,
 * navigator, ...); call before importing the framework's DOM package, which
 * decides at import whether there is a DOM.
 */
export async function installDom() {
  const { JSDOM } = await import('jsdom');
  const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: 'http://chat.test/' });
  const { window } = dom;
  for (const name of ['window', 'document', 'navigator', 'HTMLElement', 'Element', 'Node', 'SVGElement', 'MutationObserver']) {
    Object.defineProperty(globalThis, name, { value: name === 'window' ? window : window[name], configurable: true, writable: true });
  }
  return window;
}
