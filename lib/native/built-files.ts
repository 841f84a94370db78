/**
 * Where scripts/build-apps.sh puts what it compiles, found from this module's own location so it
 * works from the TypeScript sources (tests) and from dist/ (the built tools) alike:
 *
 *   <project>/build/native/lib<name>.so   helpers loaded through koffi (libibp_host, libibp_crash)
 *   <project>/build/apps/<app>.so         example and test apps (ibp_test_echo.so, …)
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IbpError } from '../errors.js';

function projectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'ibp-ts') return dir;
    } catch {
      // no package.json here: keep going up
    }
    if (path.dirname(dir) === dir) return path.resolve(from, '../..');
  }
}

export const PROJECT_ROOT = projectRoot(path.dirname(fileURLToPath(import.meta.url)));
export const NATIVE_DIR = path.join(PROJECT_ROOT, 'build', 'native');
export const APPS_DIR = path.join(PROJECT_ROOT, 'build', 'apps');

/** The path of build/native/lib<name>.so; IBP_ERR_NATIVE_MISSING when it was not built. */
export function nativeLibrary(name: string): string {
  const file = path.join(NATIVE_DIR, `lib${name}.so`);
  if (!fs.existsSync(file)) throw new IbpError('IBP_ERR_NATIVE_MISSING', { file, detail: 'not built' });
  return file;
}

/** The path of a built app: build/apps/<bin> (bin with or without `.so`; a JS app with its `.mjs`). */
export function builtApp(bin: string): string {
  return path.join(APPS_DIR, bin.endsWith('.so') || bin.endsWith('.mjs') ? bin : `${bin}.so`);
}
