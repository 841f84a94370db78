/**
 * A worker stand-in for test/ibas/app-crash.test.ts, forked with the test's TypeScript loader:
 *
 *   app-crash-child.ts <soDir> <logFile> <bin> <request> [--no-capture]
 *       install crash capture on <logFile>'s fd (unless --no-capture), load <bin> through the
 *       app cache, call it with <request>, print the response and exit 0 (if it returns)
 *   app-crash-child.ts <soDir> <logFile> --wasm-trap
 *       install crash capture, then make a WebAssembly out-of-bounds access: V8's trap must
 *       still turn it into a RangeError (prints "wasm-trap:<message>")
 *
 * No core files: RLIMIT_CORE is set to 0 first.
 */
import fs from 'node:fs';
import { AppCache } from '../../ibas/app-cache.js';
import { installCrashCapture } from '../../lib/native/crash.js';
import { createLogger } from '../../lib/log.js';
import { koffi, libc } from '../../lib/native/libc.js';

const [soDir, logFile, what, request, flag] = process.argv.slice(2) as [string, string, string, string?, string?];

const Rlimit = koffi.struct('ibp_test_rlimit', { cur: 'uint64_t', max: 'uint64_t' });
const setrlimit = libc.func('int setrlimit(int resource, const ibp_test_rlimit *rlim)');
const RLIMIT_CORE = 4;
setrlimit(RLIMIT_CORE, { cur: 0, max: 0 });
void Rlimit;

const fd = fs.openSync(logFile, 'a');
if (flag !== '--no-capture') installCrashCapture(fd);

if (what === '--wasm-trap') {
  // (module (memory 1) (func (export "f") (param i32) (result i32) local.get 0 i32.load))
  const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 5, 1, 1, 0x66, 0, 0, 0x0a, 9, 1, 7, 0, 0x20, 0, 0x28, 2, 0, 0x0b]);
  // (lib "ES2022" has no WebAssembly types)
  const wasm = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: Record<string, unknown> } } }).WebAssembly;
  const f = new wasm.Instance(new wasm.Module(bytes)).exports.f as (a: number) => number;
  try {
    f(1 << 30);
    process.stdout.write('wasm-no-trap\n');
  } catch (e) {
    process.stdout.write(`wasm-trap:${(e as Error).message}\n`);
  }
} else {
  const cache = new AppCache({ max: 2, soDir, log: createLogger({ name: 'ibas', file: logFile }), watch: false });
  const r = cache.get({ app: what.replace(/\.so$/, ''), bin: what }).call({ journal: 'CRASH1' }, Buffer.from(request ?? ''));
  process.stdout.write(`rc=${r.rc} response=${r.response.toString()}\n`);
  await cache.close();
}
