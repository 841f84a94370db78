// `npm run bench:tsapp` (issue 15): the same 100-byte echo written in TypeScript
// (build/apps/ibp_ts_echo.mjs, from ibas/apps/ibp_ts_echo.mts) against the C one
// (build/apps/ibp_test_echo.so), in ONE ibas (STATIC_WORKERPOOL, WORKERS workers), with the same
// load generator (test/bench/ibas-echoclient.c, -P ibp -u <app>), cells interleaved run by run;
// medians and the ratio TS / C. Goal (issue 15): ≥ 0.9×. Writes docs/bench/ts-app.md.
//
// Environment: WORKERS (2), DURATION s (3), WARMUP s (1), RUNS (3), CONCS ("1 16"), MODES
// ("short long"), MSG_SIZE (100), LOG_LEVEL (info), KEEP=1 keeps the temp folder.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, alive, dist, freePort, gitCommit, loadAverage, log, loopbackIp, machine, sleep, waitFor } from './harness.mjs';

const HERE = path.join(ROOT, 'test', 'bench');
const WORKERS = Number(process.env.WORKERS ?? 2);
const DURATION = Number(process.env.DURATION ?? 3);
const RUNS = Number(process.env.RUNS ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 1);
const MSG_SIZE = Number(process.env.MSG_SIZE ?? 100);
const CONCS = (process.env.CONCS ?? '1 16').split(/\s+/).filter(Boolean).map(Number);
const MODES = (process.env.MODES ?? 'short long').split(/\s+/).filter(Boolean);
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'info';
const IP = loopbackIp();
const APPS = [
  { label: 'C (.so)', app: 'ibp_test_echo', bin: 'ibp_test_echo.so' },
  { label: 'TypeScript (.mjs)', app: 'ibp_ts_echo', bin: 'ibp_ts_echo.mjs' },
];

const { initHome } = await dist('ibma/init.js');
const { ConfigSpaceWriter } = await dist('lib/shm/config-segment.js');
const { homeKeyBase, KEY_SLOT } = await dist('lib/shm/keys.js');
const { defaultConf } = await dist('ibas/init.js');
const { Home } = await dist('lib/home.js');
const { Scoreboard } = await dist('ibas/scoreboard.js');
const { destroySegment } = await dist('lib/shm/sysv.js');

async function stopPid(pid, ms = 15_000) {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

function echoclient(bin, { port, mode, conc, app }) {
  const args = ['-H', IP, '-p', String(port), '-P', 'ibp', '-m', mode, '-c', String(conc), '-d', String(DURATION), '-w', String(WARMUP), '-s', String(MSG_SIZE), '-u', app];
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: (DURATION + WARMUP + 30) * 1000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`echoclient ${args.join(' ')} gave no RESULT: ${r.stderr}`);
  return Object.fromEntries(line.slice(7).trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, v]) => [k, Number.isNaN(Number(v)) ? v : Number(v)]));
}

async function startIbas(tmp) {
  const home = path.join(tmp, 'ibas-home');
  fs.mkdirSync(home, { recursive: true });
  const h = new Home(home);
  const port = await freePort(IP);
  const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;
  initHome(h, h.etc('ibma.conf'), { node: 'BENCH', ibmsIp: IP, ibmsPort: 1, credential: 'b'.repeat(32), indexKey });
  for (const a of APPS) fs.copyFileSync(path.join(ROOT, 'build/apps', a.bin), h.so(a.bin));
  const writer = new ConfigSpaceWriter(indexKey);
  writer.publish({
    epoch: 'bench', version: 1, this_node: 'BENCH',
    nodes: [{ node: 'BENCH', invalid: 0, hosts: [{ ip: IP, port }], kvs: {} }],
    apps: APPS.map((a) => ({ app: a.app, desc: a.label, bin: a.bin, timeout: 5, timeout2: 0, invalid: 0, server_node: 'BENCH', sha256: '', size: 0 })),
  }, { ibms: { ip: IP, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 1 << 20 });
  const conf = defaultConf({ ip: IP, port, mode: 'STATIC_WORKERPOOL', maxCount: WORKERS, maxProcessCount: 0 }, h.etc('ibas.conf'));
  conf.log.level = LOG_LEVEL;
  conf.monitor.heartbeat_interval = 3600;
  conf.app.preload = APPS.map((a) => a.app); // loaded before the first measured call
  fs.writeFileSync(h.etc('ibas.conf'), JSON.stringify(conf, null, 2));
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/ibas'), '-f', h.etc('ibas.conf'), '-a', 'start'], { encoding: 'utf8', env: { ...process.env, IBP_HOME: home }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`ibas -a start failed: ${r.stderr}`);
  const pid = Number(fs.readFileSync(h.run('ibas.pid'), 'utf8'));
  const sbKey = homeKeyBase(home) + KEY_SLOT.SCOREBOARD;
  await waitFor('ibas workers', () => {
    const sb = Scoreboard.attach(sbKey);
    if (!sb) return false;
    try {
      const live = sb.all().filter((s) => s.state !== 'DEAD');
      return live.length === WORKERS && live.every((s) => s.state !== 'STARTING');
    } finally {
      sb.detach();
    }
  });
  return { port, async stop() { await stopPid(pid, 40_000); writer.removeAll(); destroySegment(sbKey); } };
}

const started = new Date();
const LOAD_START = loadAverage();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-bench-tsapp-'));
const client = path.join(tmp, 'ibas-echoclient');
execFileSync('gcc', ['-O2', '-pthread', '-o', client, path.join(HERE, 'ibas-echoclient.c')], { stdio: 'inherit' });
const runs = [];
let ibas;
try {
  ibas = await startIbas(tmp);
  for (let run = 1; run <= RUNS; run++) {
    for (const mode of MODES) for (const conc of CONCS) {
      // interleaved: both apps back to back in every cell, the order alternating by run
      for (const a of run % 2 ? APPS : [...APPS].reverse()) {
        const r = echoclient(client, { port: ibas.port, mode, conc, app: a.app });
        runs.push({ ...r, run, label: a.label, mode, conc });
        log(`run ${run} ${a.label.padEnd(18)} ${mode} c=${conc}: ${r.tps} tps p50 ${r.p50_us} us p99 ${r.p99_us} us`);
      }
    }
  }
} finally {
  await ibas?.stop().catch(() => undefined);
}

// the call itself, in process (no network, no scheduler between client and server): the cost of
// LoadedApp.call() for each app, interleaved rounds, median ns per call
const CALLS = Number(process.env.CALLS ?? 100_000);
const inproc = [];
try {
  const { AppCache } = await dist('ibas/app-cache.js');
  const { createLogger } = await dist('lib/log.js');
  const soDir = path.join(tmp, 'inproc-so');
  fs.mkdirSync(soDir, { recursive: true });
  for (const a of APPS) fs.copyFileSync(path.join(ROOT, 'build/apps', a.bin), path.join(soDir, a.bin));
  const cache = new AppCache({ max: 4, soDir, fileDir: path.join(tmp, 'inproc-file'), log: createLogger({ name: 'bench', file: path.join(tmp, 'inproc.log') }), watch: false, statCheckMs: 250 });
  const req = Buffer.alloc(MSG_SIZE, 0x61);
  for (let round = 1; round <= RUNS; round++) {
    for (const a of round % 2 ? APPS : [...APPS].reverse()) {
      const loaded = cache.get({ app: a.app, bin: a.bin }); // the call alone (a worker's get() adds a stat at most every 250 ms)
      for (let i = 0; i < 2000; i++) loaded.call({}, req); // warm
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < CALLS; i++) loaded.call({}, req);
      const ns = Number(process.hrtime.bigint() - t0) / CALLS;
      inproc.push({ round, label: a.label, ns });
      log(`in process round ${round} ${a.label.padEnd(18)} ${ns.toFixed(0)} ns/call`);
    }
  }
  await cache.close();
} finally {
  if (process.env.KEEP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const cols = MODES.flatMap((m) => CONCS.map((c) => [m, c]));
const cellOf = (label, mode, conc) => {
  const rs = runs.filter((r) => r.label === label && r.mode === mode && r.conc === conc);
  return { tps: Math.round(median(rs.map((r) => r.tps))), p50: Math.round(median(rs.map((r) => r.p50_us))), p99: Math.round(median(rs.map((r) => r.p99_us))), errors: rs.reduce((n, r) => n + (r.err_connect ?? 0) + (r.err_io ?? 0) + (r.err_proto ?? 0), 0) };
};
const lines = [
  '# TypeScript echo vs C echo in ibas',
  '',
  `Written by \`npm run bench:tsapp\` (test/bench/ts-app.bench.mjs). Run ${started.toISOString()}, git ${gitCommit()}.`,
  '',
  `- One ibas, STATIC_WORKERPOOL of ${WORKERS} workers, serving both apps (preloaded); ${MSG_SIZE}-byte echo; ${RUNS} runs per cell of ${DURATION} s after ${WARMUP} s warm-up, the two apps back to back in every cell; medians; log level \`${LOG_LEVEL}\`.`,
  '- C: build/apps/ibp_test_echo.so (ibas/apps/ibp_test_echo.c), one FFI crossing per call through the host helper. TypeScript: build/apps/ibp_ts_echo.mjs (ibas/apps/ibp_ts_echo.mts), called on the worker\'s thread (ibas/app-js.ts).',
  '- load generator: test/bench/ibas-echoclient.c `-P ibp -u <app>`, sharing the cores with the server.',
  `- machine: ${machine()}. Load average at the start ${LOAD_START}, at the end ${loadAverage()} (compare rows of one run only).`,
  '',
  '| app | ' + cols.map(([m, c]) => `${m} c=${c}`).join(' | ') + ' |',
  '|---|' + cols.map(() => '---:').join('|') + '|',
  ...APPS.map((a) => `| ${a.label} | ${cols.map(([m, c]) => { const x = cellOf(a.label, m, c); return `${x.tps} · ${x.p50}/${x.p99}${x.errors ? ` (${x.errors} errors)` : ''}`; }).join(' | ')} |`),
  `| **ratio TS / C (TPS)** | ${cols.map(([m, c]) => (cellOf(APPS[1].label, m, c).tps / Math.max(1, cellOf(APPS[0].label, m, c).tps)).toFixed(2)).join(' | ')} |`,
  '',
  'Cells: median TPS · p50/p99 µs. Goal of issue 15: the TypeScript echo ≥ 0.9× the .so echo.',
  '',
  `## The call alone, in process (\`LoadedApp.call()\` ${CALLS} times per round, ${RUNS} rounds interleaved, median)`,
  '',
  '| app | ns per call | calls/s |',
  '|---|---:|---:|',
  ...APPS.map((a) => { const ns = median(inproc.filter((r) => r.label === a.label).map((r) => r.ns)); return `| ${a.label} | ${ns.toFixed(0)} | ${Math.round(1e9 / ns)} |`; }),
  `| **ratio TS / C (calls/s)** | | ${(median(inproc.filter((r) => r.label === APPS[0].label).map((r) => r.ns)) / median(inproc.filter((r) => r.label === APPS[1].label).map((r) => r.ns))).toFixed(2)} |`,
  '',
  'The server rows include the network path, the adapter and the transaction log line, identical for both apps; this table isolates what differs (one FFI crossing into C against one JS call with a context object).',
  '',
  '## Raw',
  '',
  '```',
  ...runs.map((r) => JSON.stringify(r)),
  ...inproc.map((r) => JSON.stringify(r)),
  '```',
];
fs.mkdirSync(path.join(ROOT, 'docs/bench'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'docs/bench/ts-app.md'), `${lines.join('\n')}\n`);
log(lines.slice(0, 24).join('\n'));
