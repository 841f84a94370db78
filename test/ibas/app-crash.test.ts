/**
 * Crash capture (lib/native/ibp_crash.c through lib/native/crash.ts): a process that calls a
 * crashing app writes the signal and a native backtrace naming the crashing function to its log
 * fd, and dies BY that signal (so a manager sees which). Without the handlers it still dies the
 * same way, but silently. WebAssembly traps keep working with the handlers installed.
 */
import t from 'tap';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtApp } from '../../lib/native/built-files.js';

const CHILD = fileURLToPath(new URL('./app-crash-child.ts', import.meta.url));

interface Outcome { code: number | null; signal: NodeJS.Signals | null; stdout: string; log: string }

// Each child loads the TypeScript sources (about a second of CPU): run up to 3 at a time, every
// scenario started up front and awaited by its own subtest.
const MAX_CHILDREN = 3;
let running = 0;
const queue: (() => void)[] = [];
async function slot<T>(f: () => Promise<T>): Promise<T> {
  if (running >= MAX_CHILDREN) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await f();
  } finally {
    running--;
    queue.shift()?.();
  }
}

function runChild(t: Tap.Test, dir: string, args: string[]): Promise<Outcome> {
  return slot(() => spawnChild(t, dir, args));
}

async function spawnChild(t: Tap.Test, dir: string, args: string[]): Promise<Outcome> {
  const logFile = path.join(dir, `worker-${args.join('-').replace(/[^\w-]/g, '_')}.log`);
  const child = fork(CHILD, [path.join(dir, 'so'), logFile, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child ${args.join(' ')} still running after 30 s; stderr: ${stderr}`)), 30_000);
    child.on('exit', (c, s) => {
      clearTimeout(timer);
      resolve([c, s]);
    });
  });
  if (code !== null && code !== 0) t.comment(`child stderr: ${stderr}`);
  return { code, signal, stdout, log: fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '' };
}

// one folder for every scenario (each child writes its own log file there)
const DIR = t.testdir({ so: {}, file: {} });
for (const a of ['ibp_test_crash', 'ibp_test_abort', 'ibp_test_echo']) fs.copyFileSync(builtApp(a), path.join(DIR, 'so', `${a}.so`));

// deep: the recursion fills the 64 frames of the report, so somain and the host are not in it
const cases: { name: string; bin: string; req: string; signal: NodeJS.Signals; fn: string; deep?: boolean }[] = [
  { name: 'NULL write', bin: 'ibp_test_crash.so', req: 'segv', signal: 'SIGSEGV', fn: 'ibp_crash_here' },
  { name: 'abort()', bin: 'ibp_test_abort.so', req: '', signal: 'SIGABRT', fn: 'ibp_abort_here' },
  { name: 'division by zero', bin: 'ibp_test_crash.so', req: 'fpe', signal: 'SIGFPE', fn: 'ibp_crash_fpe_here' },
  { name: 'illegal instruction', bin: 'ibp_test_crash.so', req: 'ill', signal: 'SIGILL', fn: 'ibp_crash_ill_here' },
  { name: 'stack overflow (alternate stack)', bin: 'ibp_test_crash.so', req: 'stack', signal: 'SIGSEGV', fn: 'ibp_crash_stack_here', deep: true },
];

// every child starts now (at most MAX_CHILDREN at a time); each subtest awaits its own
const outcomes = cases.map((c) => runChild(t, DIR, [c.bin, c.req]));
const nullAddr = runChild(t, DIR, ['ibp_test_crash.so', '']);
const noCapture = runChild(t, DIR, ['ibp_test_crash.so', 'segv', '--no-capture']);
const normal = runChild(t, DIR, ['ibp_test_echo.so', 'hello']);
const wasm = runChild(t, DIR, ['--wasm-trap']);
// no unhandled rejection before a subtest gets to await it
for (const p of [...outcomes, nullAddr, noCapture, normal, wasm]) p.catch(() => undefined);

cases.forEach((c, i) => {
  t.test(`${c.name}: backtrace names ${c.fn}, the process dies by ${c.signal}`, async (t) => {
    const r = await outcomes[i]!;
    t.equal(r.signal, c.signal, `killed by ${c.signal}`);
    t.equal(r.code, null);
    t.equal(r.stdout, '', 'the call never returned');
    t.match(r.log, new RegExp(`ibp_crash \\| signal , name\\[${c.signal}\\] signo\\[\\d+\\] code\\[-?\\d+\\] (addr\\[0x[0-9a-f]+\\]|from\\[\\d+\\]) pid\\[\\d+\\]`));
    t.match(r.log, /ibp_crash \| backtrace , frames\[\d+\]/);
    t.match(r.log, new RegExp(`${c.bin.replace('.', '\\.')}\\(${c.fn}\\+0x[0-9a-f]+\\)`), `a frame names ${c.fn}`);
    if (!c.deep) {
      t.match(r.log, new RegExp(`${c.bin.replace('.', '\\.')}\\(somain\\+0x[0-9a-f]+\\)`), 'and the app entry point below it');
      t.match(r.log, /libibp_host\.so\(ibp_host_call\+0x[0-9a-f]+\)/, 'and the host helper');
    }
    t.match(r.log, new RegExp(`ibp_crash \\| end , re-raising ${c.signal} with the default action`));
  });
});

t.test('NULL pointer in the app address: the fault address is 0x0', async (t) => {
  const r = await nullAddr;
  t.equal(r.signal, 'SIGSEGV');
  t.match(r.log, /name\[SIGSEGV\] signo\[11\] code\[1\] addr\[0x0\]/);
});

t.test('without capture the process dies by the same signal, with no report', async (t) => {
  const r = await noCapture;
  t.equal(r.signal, 'SIGSEGV');
  t.notMatch(r.log, /ibp_crash/);
});

t.test('with capture installed, a normal call and exit are untouched', async (t) => {
  const r = await normal;
  t.equal(r.code, 0);
  t.equal(r.signal, null);
  t.equal(r.stdout, 'rc=0 response=hello\n');
  t.notMatch(r.log, /ibp_crash \|/);
});

t.test('WebAssembly bounds traps still reach V8 with the handlers installed', async (t) => {
  const r = await wasm;
  t.equal(r.code, 0);
  t.match(r.stdout, /^wasm-trap:.*out of bounds/);
  t.notMatch(r.log, /ibp_crash/);
});
