#!/usr/bin/env node
// npm run bench:ibas — echo transactions through ibas next to the model it implements and the bare
// Node baselines, in one run, driven by the same load generator; results in docs/bench/ibas.md.
//
//   ibas (STATIC_WORKERPOOL, WORKERS workers, ibp_test_echo.so)    -P ibp   (IBP-TS protocol)
//   c-lf: test/bench/ibas-c-lf-echo.c, a minimal C pre-fork leader-follower server of the
//         project's own speaking the same binary protocol (echo inline, no .so)  -P ibp
//   koffi-lf: test/bench/ibas-koffi-lf.mjs, c-lf written again in Node with synchronous koffi
//         calls, the echo by somain of ibp_test_echo.so through the host helper  -P ibp
//         (the Node floor: ibas − koffi-lf is ibas's own per-transaction work)
//   bare Node cluster + net echo server (WORKERS workers)           -P tdhb  (4-digit length + body)
//   cells: short and long connections at concurrency 1 and 16: TPS, p50, p99, server CPU per
//   transaction (utime+stime of the server's processes from /proc over the measured window)
//   wrk c=16 keep-alive against ibas's HTTP adapter (POST /ibp/ibp_test_echo) and a bare Node
//   cluster http echo; ibas worker RSS after RSS_FIRST and after RSS_TX transactions of the plain
//   echo, measured first on the fresh ibas, and once more at the end (after the signed and HTTP
//   rows: the replay cache's shared pages and node:crypto count there).
// The three servers (ibas also with the TypeScript echo) run side by side and every cell runs them back to back, RUNS times
// (interleaved, medians): load swings of the shared machine hit every side alike.
//
// Signing rows (issue 11): the same ibas (security.sign_flag and encrypt_flag optional, node key
// published in its config space, private key file in keys/) driven by ibac itself
// (test/bench/ibas-sign-client.mjs) plain, signed, and signed+encrypted, with the ratios to plain.
//
// The load generator is test/bench/ibas-echoclient.c (the bench anchors' echoclient.c with the
// IBP protocol added) and the C server is built here with gcc. wrk is apt-get installed when
// missing (INSTALL_WRK=0 skips that; the HTTP cell is then reported as skipped). Bounded: every
// run lasts WARMUP + SECONDS; every server is stopped by the pid it was started with.
//
// Env: WORKERS (2), SECONDS (alias DURATION; 5), RUNS (3), WARMUP (1), MSG_SIZE (100),
//      CONCS ("1 16"), MODES ("short long"), RSS_FIRST (10000), RSS_TX (100000; 0 skips),
//      POLICY (none | rr: the Node cluster scheduling of the baseline; none = workers share the
//      listen socket, the closest to pre-fork), LOG_LEVEL (info: ibas's transaction log on, as shipped;
//      a second ibas at level warn runs beside it as the side "ibas (log warn)": the line's cost),
//      SIDES (only these TCP sides, e.g. "ibas c-lf koffi-lf"; "quiet" adds the log-warn ibas, "ts" the TS echo),
//      SIGN_CELLS ("long:1 short:4"; "" skips the signing rows), SIGN_SIZE (MSG_SIZE),
//      IBAS_NODE_ARGS (node flags for the ibas processes, e.g. --prof, or --cpu-prof --cpu-prof-dir=DIR:
//      workers then leave through process.exit so their profiles are written; summarise them with
//      test/bench/cpuprofile-top.mjs), KEEP=1 (keep the temporary folder)
// A run with SECONDS < 5 or RUNS < 3 is marked a smoke run in docs/bench/ibas.md.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, alive, dist, freePort, gitCommit, log, loopbackIp, sleep, waitFor } from './harness.mjs';

const HERE = path.join(ROOT, 'test', 'bench');


const WORKERS = Number(process.env.WORKERS ?? 2);
const DURATION = Number(process.env.SECONDS ?? process.env.DURATION ?? 5);
const RUNS = Number(process.env.RUNS ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 1);
const MSG_SIZE = Number(process.env.MSG_SIZE ?? 100);
const CONCS = (process.env.CONCS ?? '1 16').split(/\s+/).filter(Boolean).map(Number);
const MODES = (process.env.MODES ?? 'short long').split(/\s+/).filter(Boolean);
const POLICY = process.env.POLICY ?? 'none';
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'info';
const RSS_FIRST = Number(process.env.RSS_FIRST ?? 10_000);
const RSS_TX = Number(process.env.RSS_TX ?? 100_000);
const SMOKE = DURATION < 5 || RUNS < 3;
const SIGN_CELLS = (process.env.SIGN_CELLS ?? 'long:1 short:4').split(/\s+/).filter(Boolean).map((x) => x.split(':')).map(([m, c]) => [m, Number(c)]);
const SIGN_SIZE = Number(process.env.SIGN_SIZE ?? MSG_SIZE);
/** SIDES: only these TCP sides (e.g. "ibas c-lf" while profiling); HTTP=0 skips the wrk cells. */
const SIDES = process.env.SIDES?.split(/\s+/).filter(Boolean);
const HTTP_CELLS = process.env.HTTP !== '0';
const SIGN_VARIANTS = [['plain', 'none', 'none'], ['sign', 'required', 'none'], ['sign+encrypt', 'required', 'required']];
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64 and arm64
const IP = loopbackIp();

const { initHome } = await dist('ibma/init.js');
const { ConfigSpaceWriter } = await dist('lib/shm/config-segment.js');
const { homeKeyBase, KEY_SLOT } = await dist('lib/shm/keys.js');
const { defaultConf } = await dist('ibas/init.js');
const { Home } = await dist('lib/home.js');
const { Scoreboard } = await dist('ibas/scoreboard.js');
const { destroySegment } = await dist('lib/shm/sysv.js');
const { generateNodeKey, nodeKeyToWire, nodePrivateKeyToWire } = await dist('lib/node-keys.js');
const { writePrivateKeyFile } = await dist('lib/node-key-files.js');


const freePortHere = () => freePort(IP);



/** Stop a process we started: SIGTERM, then SIGKILL after a deadline. */
async function stopPid(pid, ms = 15_000) {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

// ------------------------------------------------------------ load generators, CPU, RSS

function build(tmp, src, out, extra = []) {
  const bin = path.join(tmp, out);
  execFileSync('gcc', ['-O2', ...extra, '-o', bin, path.join(HERE, src)], { stdio: 'inherit' });
  return bin;
}

/** A process and all its descendants (from /proc/<pid>/stat ppid). */
function processTree(root) {
  const parent = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, pp] of parent) if (pp === out[i]) out.push(pid);
  return out;
}

/** utime and stime of the processes, in clock ticks (a process gone in between counts 0). */
function cpuTicks(pids) {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').slice(0, 4096);
      const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
      user += Number(v[11]); // field 14 of proc(5)
      sys += Number(v[12]); // field 15
    } catch {
      // gone
    }
  }
  return { user, sys };
}

/** VmRSS of a process and its split (RssAnon private, RssFile mapped files such as node's own code, RssShmem SysV segments), kB. */
function rssOf(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? 0);
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
  } catch {
    return { rss: 0, anon: 0, file: 0, shmem: 0 };
  }
}

/**
 * Run a load generator; the server's CPU is sampled when its warm-up ends and when it exits, so
 * the CPU per transaction covers the measured window (± one sampling step).
 */
async function measured(cmd, args, serverPid, warmupS, timeoutS) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MSG_SIZE: String(MSG_SIZE) } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
  const exited = new Promise((r) => child.once('close', r));
  await Promise.race([sleep(warmupS * 1000), exited]);
  const pids = processTree(serverPid);
  const t0 = cpuTicks(pids);
  const w0 = Date.now();
  await exited;
  clearTimeout(killer);
  const t1 = cpuTicks(pids);
  const cpuS = (t1.user + t1.sys - t0.user - t0.sys) / CLK_TCK;
  const userS = (t1.user - t0.user) / CLK_TCK;
  return { out, err, cpuS, userS, wallS: (Date.now() - w0) / 1000 };
}

async function echoclient(bin, { port, proto, mode, conc, uri, serverPid, n }) {
  const d = n ? 600 : DURATION;
  const w = n ? 0 : WARMUP;
  const args = ['-H', IP, '-p', String(port), '-P', proto, '-m', mode, '-c', String(conc), '-d', String(d), '-w', String(w), '-s', String(MSG_SIZE)];
  if (uri) args.push('-u', uri);
  if (n) args.push('-N', String(n));
  const m = await measured(bin, args, serverPid, w, d + w + 30);
  const line = m.out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`echoclient ${args.join(' ')} gave no RESULT: ${m.err}`);
  const r = Object.fromEntries(line.slice(7).trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, v]) => [k, Number.isNaN(Number(v)) ? v : Number(v)]));
  const perTx = (sec) => (r.txn > 0 ? Math.round((sec * 1e6) / r.txn * 10) / 10 : 0);
  return { ...r, server_cpu_s: m.cpuS, cpu_us_per_tx: perTx(m.cpuS), user_us_per_tx: perTx(m.userS) };
}

function ensureWrk() {
  if (spawnSync('wrk', ['-v']).error === undefined) return true;
  if (process.env.INSTALL_WRK === '0') return false;
  log('wrk missing: apt-get install -y wrk');
  const r = spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: 'inherit', timeout: 300_000 });
  return r.status === 0 && spawnSync('wrk', ['-v']).error === undefined;
}

async function wrk(url, conc, serverPid) {
  const m = await measured('wrk', ['-t', String(Math.min(conc, 2)), '-c', String(conc), '-d', `${DURATION}s`, '--timeout', '5s', '-s', path.join(HERE, 'ibas-wrk-post.lua'), url], serverPid, 0, DURATION + 30);
  const line = m.out.split('\n').find((l) => l.startsWith('WRKRESULT '));
  if (!line) throw new Error(`wrk gave no WRKRESULT: ${m.out}${m.err}`);
  const v = Object.fromEntries(line.slice(10).trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, x]) => [k, Number(x)]));
  return {
    tps: Math.round(v.requests / (v.duration_us / 1e6)), p50_us: v.p50_us, p99_us: v.p99_us,
    errors: v.err_connect + v.err_read + v.err_write + v.err_timeout + v.err_status,
    cpu_us_per_tx: v.requests > 0 ? Math.round((m.cpuS * 1e6) / v.requests * 10) / 10 : 0,
  };
}

// ------------------------------------------------------------ servers

async function startIbas(tmp, dir = 'ibas-home', logLevel = LOG_LEVEL) {
  const home = path.join(tmp, dir);
  fs.mkdirSync(home, { recursive: true });
  const h = new Home(home);
  const port = await freePortHere();
  const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;
  initHome(h, h.etc('ibma.conf'), { node: 'BENCH', ibmsIp: IP, ibmsPort: 1, credential: 'b'.repeat(32), indexKey });
  fs.copyFileSync(path.join(ROOT, 'build/apps/ibp_test_echo.so'), h.so('ibp_test_echo.so'));
  // the same echo written in TypeScript (issue 15): ibas/apps/ibp_ts_echo.mts, built to .mjs
  fs.copyFileSync(path.join(ROOT, 'build/apps/ibp_ts_echo.mjs'), h.so('ibp_ts_echo.mjs'));
  // the node's key pair, as ibma publishes it and writes its private file (signing rows)
  const nodeKey = generateNodeKey('BENCH', 0);
  fs.mkdirSync(h.dir('keys'), { recursive: true, mode: 0o700 });
  fs.chmodSync(h.dir('keys'), 0o700);
  writePrivateKeyFile(h.dir('keys'), nodePrivateKeyToWire(nodeKey));
  const writer = new ConfigSpaceWriter(indexKey);
  writer.publish({
    epoch: 'bench', version: 1, this_node: 'BENCH', node_keys: [nodeKeyToWire(nodeKey)],
    nodes: [{ node: 'BENCH', invalid: 0, hosts: [{ ip: IP, port }], kvs: {} }],
    apps: [
      { app: 'ibp_test_echo', desc: 'echo', bin: 'ibp_test_echo.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'BENCH', sha256: '', size: 0 },
      { app: 'ibp_ts_echo', desc: 'echo in TypeScript', bin: 'ibp_ts_echo.mjs', timeout: 5, timeout2: 0, invalid: 0, server_node: 'BENCH', sha256: '', size: 0 },
    ],
  }, { ibms: { ip: IP, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 1 << 20 });
  const conf = defaultConf({ ip: IP, port, mode: 'STATIC_WORKERPOOL', maxCount: WORKERS, maxProcessCount: 0 }, h.etc('ibas.conf'));
  conf.log.level = logLevel;
  conf.monitor.heartbeat_interval = 3600;
  conf.security.sign_flag = 'optional';
  conf.security.encrypt_flag = 'optional';
  fs.writeFileSync(h.etc('ibas.conf'), JSON.stringify(conf, null, 2));
  const nodeArgs = (process.env.IBAS_NODE_ARGS ?? '').split(/\s+/).filter(Boolean); // e.g. --prof (workers inherit the manager's)
  const r = spawnSync(process.execPath, [...nodeArgs, path.join(ROOT, 'bin/ibas'), '-f', h.etc('ibas.conf'), '-a', 'start'], { encoding: 'utf8', env: { ...process.env, IBP_HOME: home }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`ibas -a start failed: ${r.stderr}`);
  const pid = Number(fs.readFileSync(h.run('ibas.pid'), 'utf8'));
  const sbKey = homeKeyBase(home) + KEY_SLOT.SCOREBOARD;
  const live = () => {
    const sb = Scoreboard.attach(sbKey);
    if (!sb) return [];
    try {
      return sb.all().filter((s) => s.state !== 'DEAD');
    } finally {
      sb.detach();
    }
  };
  await waitFor('ibas workers', () => {
    const l = live();
    return l.length === WORKERS && l.every((s) => s.state !== 'STARTING');
  });
  return {
    port, pid, ibmaConf: h.etc('ibma.conf'),
    workerPids: () => live().map((s) => s.pid),
    async stop() {
      await stopPid(pid, 40_000);
      writer.removeAll();
      destroySegment(sbKey);
    },
  };
}

async function startChild(what, cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const gone = new Promise((r) => child.once('exit', r));
  await waitFor(`${what} ready`, () => out.includes('READY'));
  return {
    pid: child.pid,
    async stop() {
      await stopPid(child.pid);
      await gone;
    },
  };
}

async function startNode(script) {
  const port = await freePortHere();
  const c = await startChild(script, process.execPath, [path.join(HERE, script)], { PORT: String(port), HOST: IP, WORKERS: String(WORKERS), NODE_CLUSTER_SCHED_POLICY: POLICY });
  return { port, ...c };
}

async function startKoffiServer() {
  const port = await freePortHere();
  const c = await startChild('ibas-koffi-lf', process.execPath, [path.join(HERE, 'ibas-koffi-lf.mjs'), IP, String(port), String(WORKERS)], {});
  return { port, ...c };
}

async function startCServer(bin) {
  const port = await freePortHere();
  const c = await startChild('ibas-c-lf-echo', bin, [IP, String(port), String(WORKERS)], {});
  return { port, ...c };
}

// ------------------------------------------------------------ run

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length === 0 ? 0 : v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibas-bench-'));
const started = new Date();
const LOAD_START = os.loadavg().map((x) => x.toFixed(1)).join(' ');
const NODE_NET = `node-net-${POLICY}`;
const NODE_HTTP = `node-http-${POLICY}`;
const rows = [];
const wrkRows = [];
const runs = [];
const wrkRuns = [];
const signRuns = [];
const signRows = [];
const servers = [];
/** The same ibas serving the TypeScript echo (issue 15: ratio to the .so echo, goal ≥ 0.9×). */
const TS_SIDE = 'ibas (TS echo)';
/** A second ibas at log level warn: no transaction log line (what the line costs, from the same run). */
const QUIET_SIDE = 'ibas (log warn)';
/** c-lf in Node over koffi, the echo by the .so (the Node floor of the model). */
const KOFFI_SIDE = 'koffi-lf';
const rss = { points: [] };
let wrkNote = '';
process.on('SIGINT', async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  process.exit(130);
});
try {
  const client = build(tmp, 'ibas-echoclient.c', 'ibas-echoclient', ['-pthread']);
  const cBin = build(tmp, 'ibas-c-lf-echo.c', 'ibas-c-lf-echo');
  log(`ibas bench${SMOKE ? ' (SMOKE RUN)' : ''}: ${WORKERS} workers, ${MSG_SIZE}-byte echo, ${RUNS} runs of ${DURATION} s (+${WARMUP} s warm-up) per cell, interleaved, loopback ${IP}, git ${gitCommit()}`);
  log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${os.type()} ${os.release()}, Node ${process.version}, load ${LOAD_START}`);
  // every server up at once; each cell runs them back to back, RUNS times
  const ibas = await startIbas(tmp);
  servers.push(ibas);
  const quiet = !SIDES || SIDES.includes('quiet') ? await startIbas(tmp, 'ibas-home-quiet', 'warn') : undefined;
  if (quiet) servers.push(quiet);
  const cServer = await startCServer(cBin);
  servers.push(cServer);
  const koffiServer = !SIDES || SIDES.includes(KOFFI_SIDE) ? await startKoffiServer() : undefined;
  if (koffiServer) servers.push(koffiServer);
  const node = await startNode('ibas-baseline-net.cjs');
  servers.push(node);
  const haveWrk = HTTP_CELLS && ensureWrk();
  if (!haveWrk) wrkNote = HTTP_CELLS ? 'wrk is not available (INSTALL_WRK=0 or apt-get install wrk failed): the HTTP cell was skipped.' : 'skipped (HTTP=0)';
  if (!haveWrk) log(wrkNote);
  const http = haveWrk ? await startNode('ibas-baseline-http.cjs') : undefined;
  if (http) servers.push(http);
  const sides = [
    { server: 'ibas', port: ibas.port, proto: 'ibp', uri: 'ibp_test_echo', pid: ibas.pid },
    { server: TS_SIDE, port: ibas.port, proto: 'ibp', uri: 'ibp_ts_echo', pid: ibas.pid },
    ...(quiet ? [{ server: QUIET_SIDE, port: quiet.port, proto: 'ibp', uri: 'ibp_test_echo', pid: quiet.pid }] : []),
    { server: 'c-lf', port: cServer.port, proto: 'ibp', uri: 'ibp_test_echo', pid: cServer.pid },
    ...(koffiServer ? [{ server: KOFFI_SIDE, port: koffiServer.port, proto: 'ibp', uri: 'ibp_test_echo', pid: koffiServer.pid }] : []),
    { server: NODE_NET, port: node.port, proto: 'tdhb', pid: node.pid },
  ].filter((s) => !SIDES || SIDES.includes(s.server) || (s.server === TS_SIDE && SIDES.includes('ts')) || (s.server === QUIET_SIDE && SIDES.includes('quiet')));
  // worker RSS first, on the fresh ibas: after RSS_FIRST transactions and after RSS_TX in all
  // (plain echo, long connection, c=1), before any signed transaction touched the replay cache
  if (RSS_TX > 0) {
    let done = 0;
    for (const target of [RSS_FIRST, RSS_TX]) {
      const r = await echoclient(client, { port: ibas.port, proto: 'ibp', mode: 'long', conc: 1, uri: 'ibp_test_echo', serverPid: ibas.pid, n: target - done });
      done = target;
      const kb = ibas.workerPids().map(rssOf);
      rss.points.push({ tx: target, kb, errors: r.err_connect + r.err_io + r.err_proto });
      log(`rss after ${target} transactions (this load ${r.txn} tx): ${kb.map((k) => `${(k.rss / 1024).toFixed(1)} MB (anon ${(k.anon / 1024).toFixed(1)}, file ${(k.file / 1024).toFixed(1)}, shmem ${(k.shmem / 1024).toFixed(1)})`).join(', ')}`);
    }
  }
  for (let run = 1; run <= RUNS; run++) {
    for (const mode of MODES) for (const conc of CONCS) for (const side of sides) {
      const r = await echoclient(client, { port: side.port, proto: side.proto, mode, conc, uri: side.uri, serverPid: side.pid });
      runs.push({ server: side.server, mode, conc, run, ...r });
      log(`run ${run} ${side.server.padEnd(14)} ${mode.padEnd(5)} c=${String(conc).padEnd(2)} ${r.tps} tps p50 ${r.p50_us} us p99 ${r.p99_us} us cpu ${r.cpu_us_per_tx} us/tx served ${r.served} errors ${r.err_connect + r.err_io + r.err_proto}`);
    }
    for (const [mode, conc] of SIGN_CELLS) for (const [variant, sign, encrypt] of SIGN_VARIANTS) {
      const m = await measured(process.execPath, [path.join(HERE, 'ibas-sign-client.mjs'), ibas.ibmaConf, 'BENCH', 'ibp_test_echo', mode, String(conc), String(DURATION), String(WARMUP), String(SIGN_SIZE), sign, encrypt], ibas.pid, WARMUP, DURATION + WARMUP + 60);
      const line = m.out.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) throw new Error(`ibas-sign-client ${variant} gave no RESULT: ${m.err}`);
      const r = Object.fromEntries(line.slice(7).trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
      r.cpu_us_per_tx = r.txn > 0 ? Math.round((m.cpuS * 1e6) / r.txn * 10) / 10 : 0;
      signRuns.push({ variant, mode, conc, run, ...r });
      log(`run ${run} ibac ${variant.padEnd(13)} ${mode.padEnd(5)} c=${String(conc).padEnd(2)} ${r.tps} tps p50 ${r.p50_us} us p99 ${r.p99_us} us cpu ${r.cpu_us_per_tx} us/tx errors ${r.errors}`);
    }
    if (http) {
      for (const [server, url, pid] of [['ibas HTTP adapter', `http://${IP}:${ibas.port}/ibp/ibp_test_echo`, ibas.pid], [NODE_HTTP, `http://${IP}:${http.port}/echo`, http.pid]]) {
        const w = await wrk(url, 16, pid);
        wrkRuns.push({ server, run, ...w });
        log(`run ${run} ${server.padEnd(17)} wrk c=16 ${w.tps} tps p50 ${w.p50_us} us p99 ${w.p99_us} us cpu ${w.cpu_us_per_tx} us/tx errors ${w.errors}`);
      }
    }
  }
  // once more at the end: the same workers after every row (signed transactions touched the replay cache)
  if (RSS_TX > 0) {
    rss.after = { tx: 'then every row above (signed, HTTP)', kb: ibas.workerPids().map(rssOf), errors: 0 };
    log(`rss ${rss.after.tx}: ${rss.after.kb.map((k) => `${(k.rss / 1024).toFixed(1)} MB`).join(', ')}`);
  }
  for (const side of sides) for (const mode of MODES) for (const conc of CONCS) {
    const rs = runs.filter((r) => r.server === side.server && r.mode === mode && r.conc === conc);
    rows.push({
      server: side.server, mode, conc,
      tps: Math.round(median(rs.map((r) => r.tps))), p50_us: Math.round(median(rs.map((r) => r.p50_us))), p99_us: Math.round(median(rs.map((r) => r.p99_us))),
      tps_min: Math.round(Math.min(...rs.map((r) => r.tps))), tps_max: Math.round(Math.max(...rs.map((r) => r.tps))),
      cpu: median(rs.map((r) => r.cpu_us_per_tx)), user: median(rs.map((r) => r.user_us_per_tx)),
      served: rs[rs.length - 1].served, errors: rs.reduce((n, r) => n + r.err_connect + r.err_io + r.err_proto, 0),
    });
  }
  for (const [mode, conc] of SIGN_CELLS) for (const [variant] of SIGN_VARIANTS) {
    const rs = signRuns.filter((r) => r.variant === variant && r.mode === mode && r.conc === conc);
    if (rs.length === 0) continue;
    signRows.push({
      variant, mode, conc, tps: Math.round(median(rs.map((r) => r.tps))), tps_min: Math.min(...rs.map((r) => r.tps)), tps_max: Math.max(...rs.map((r) => r.tps)),
      p50_us: Math.round(median(rs.map((r) => r.p50_us))), p99_us: Math.round(median(rs.map((r) => r.p99_us))), cpu: median(rs.map((r) => r.cpu_us_per_tx)),
      errors: rs.reduce((n, r) => n + r.errors, 0),
    });
  }
  for (const server of [...new Set(wrkRuns.map((w) => w.server))]) {
    const ws = wrkRuns.filter((w) => w.server === server);
    wrkRows.push({ server, tps: Math.round(median(ws.map((w) => w.tps))), p50_us: median(ws.map((w) => w.p50_us)), p99_us: median(ws.map((w) => w.p99_us)), cpu: median(ws.map((w) => w.cpu_us_per_tx)), errors: ws.reduce((n, w) => n + w.errors, 0) });
  }
} finally {
  for (const s of servers) await s.stop().catch(() => undefined);
  if (process.env.KEEP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
  else log(`kept ${tmp}`);
}

// ------------------------------------------------------------ report

const cell = (r) => (r ? `${r.tps} (${r.tps_min}..${r.tps_max}) · ${r.p50_us}/${r.p99_us} · ${r.cpu}${r.served && !String(r.served).startsWith(`${r.conc}/`) ? ` (served ${r.served})` : ''}` : '-');
const find = (server, mode, conc) => rows.find((r) => r.server === server && r.mode === mode && r.conc === conc);
const cols = MODES.flatMap((m) => CONCS.map((c) => [m, c]));
const q = (a, b) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
const fmt = (x) => (x === undefined ? '-' : x.toFixed(2));
const ratioRow = (label, f) => `| **${label}** | ${cols.map(([m, c]) => fmt(f(find('ibas', m, c), find('c-lf', m, c), find(NODE_NET, m, c)))).join(' | ')} |`;

// goals of issue 9, from this run
const I = (m, c) => find('ibas', m, c);
const C = (m, c) => find('c-lf', m, c);
const N = (m, c) => find(NODE_NET, m, c);
const wI = wrkRows.find((w) => w.server === 'ibas HTTP adapter');
const wN = wrkRows.find((w) => w.server === NODE_HTTP);
const maxRss = (pt) => (pt ? Math.max(...pt.kb.map((k) => k.rss)) / 1024 : undefined);
const rss10 = maxRss(rss.points[0]);
const rss100 = maxRss(rss.points[1]);
const goals = [
  ['short c=1 TPS ≥ 0.9× c-lf', q(I('short', 1)?.tps, C('short', 1)?.tps), (x) => x >= 0.9],
  ['long c=1 TPS ≥ 0.95× c-lf', q(I('long', 1)?.tps, C('long', 1)?.tps), (x) => x >= 0.95],
  ['long c=1 p50 ≤ 1.1× c-lf', q(I('long', 1)?.p50_us, C('long', 1)?.p50_us), (x) => x <= 1.1],
  [`short c=16 TPS ≥ 1.0× ${NODE_NET}`, q(I('short', 16)?.tps, N('short', 16)?.tps), (x) => x >= 1.0],
  ['short c=16 server CPU/tx ≤ 1.3× c-lf', q(I('short', 16)?.cpu, C('short', 16)?.cpu), (x) => x <= 1.3],
  ['TS echo long c=1 TPS ≥ 0.9× the .so echo (issue 15)', q(find(TS_SIDE, 'long', 1)?.tps, I('long', 1)?.tps), (x) => x >= 0.9],
  [`HTTP wrk c=16 TPS ≥ 1.0× ${NODE_HTTP}`, q(wI?.tps, wN?.tps), (x) => x >= 1.0],
  [`worker RSS after ${RSS_TX} tx ≤ 60 MB`, rss100, (x) => x <= 60, 'MB'],
  [`worker RSS growth ${RSS_FIRST} → ${RSS_TX} tx ≈ 0 (≤ 5 MB)`, rss100 !== undefined && rss10 !== undefined ? rss100 - rss10 : undefined, (x) => x <= 5, 'MB'],
];

const lines = [];
lines.push(`# ibas echo benchmark${SMOKE ? ' — SMOKE RUN (short parameters, shared machine: not a result)' : ''}`);
lines.push('');
lines.push(`Written by \`npm run bench:ibas\` (test/bench/ibas.bench.mjs). Run ${started.toISOString()}, git ${gitCommit()}.`);
lines.push('');
lines.push('## Parameters and machine');
lines.push('');
lines.push(`- ${WORKERS} workers each server; ${MSG_SIZE}-byte echo; ${RUNS} runs per cell of ${DURATION} s measured after ${WARMUP} s warm-up, the servers back to back in each cell (interleaved); medians, TPS min..max in parentheses; loopback only.`);
lines.push(`- ibas: STATIC_WORKERPOOL, app ibp_test_echo.so, IBP-TS binary protocol pipelined (PRE_REQUEST + REQUEST in one write, PRE_ANSWER + RESPONSE back), log level \`${LOG_LEVEL}\` (one transaction log line per transaction).`);
lines.push(`- ${QUIET_SIDE}: a second ibas, the same in every way but log level \`warn\`: no transaction log line (what the line costs, measured in the same run).`);
lines.push('- c-lf: test/bench/ibas-c-lf-echo.c, the model ibas implements: C pre-fork, SysV-semaphore accept lock (leader-follower), one connection per worker, the same binary protocol and answers; the echo is a memcpy (no .so call, no scoreboard, no log line, no deadlines): the floor.');
lines.push(`- ${KOFFI_SIDE}: test/bench/ibas-koffi-lf.mjs, c-lf written again in Node: every call on the connection path a synchronous koffi call to libc (semop, accept4, recv, send, close), frames cut in JS, the echo by somain of ibp_test_echo.so through the host helper as ibas calls it; no scoreboard, no log line, no deadlines, no tier-1 guard, no app lookup: the Node floor. ibas − ${KOFFI_SIDE} is ibas's own per-transaction work, ${KOFFI_SIDE} − c-lf what Node and koffi cost.`);
lines.push(`- ${NODE_NET}: bare Node \`cluster\` + \`net\` echo (test/bench/ibas-baseline-net.cjs, NODE_CLUSTER_SCHED_POLICY=${POLICY}), 4-digit length framing; ${NODE_HTTP}: bare Node \`cluster\` + \`http\` echo (test/bench/ibas-baseline-http.cjs).`);
lines.push('- load generators: test/bench/ibas-echoclient.c (the bench anchors\' echoclient with `-P ibp`), the same binary for every TCP cell; wrk with test/bench/ibas-wrk-post.lua for HTTP. They share the cores with the servers.');
lines.push('- server CPU per transaction: utime+stime of the server\'s processes (manager/primary and workers, from /proc/<pid>/stat) over the measured window, divided by the transactions measured.');
lines.push(`- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, Node ${process.version}. Load average at the start ${LOAD_START}, at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine during the run adds noise: compare rows of the same run only).`);
lines.push('');
lines.push('## Echo over TCP (median TPS (min..max) · p50/p99 µs · server CPU µs/tx)');
lines.push('');
lines.push(`| server | ${cols.map(([m, c]) => `${m} c=${c}`).join(' | ')} |`);
lines.push(`|---|${cols.map(() => '---:').join('|')}|`);
for (const server of ['ibas', TS_SIDE, QUIET_SIDE, 'c-lf', KOFFI_SIDE, NODE_NET]) lines.push(`| ${server} | ${cols.map(([m, c]) => cell(find(server, m, c))).join(' | ')} |`);
lines.push(ratioRow('ibas / c-lf TPS', (i, c) => q(i?.tps, c?.tps)));
lines.push(ratioRow('ibas / c-lf p50', (i, c) => q(i?.p50_us, c?.p50_us)));
lines.push(ratioRow('ibas / c-lf CPU per tx', (i, c) => q(i?.cpu, c?.cpu)));
lines.push(ratioRow(`ibas / ${NODE_NET} TPS`, (i, _c, n) => q(i?.tps, n?.tps)));
lines.push(`| **${KOFFI_SIDE} / c-lf TPS** | ${cols.map(([m, c]) => fmt(q(find(KOFFI_SIDE, m, c)?.tps, find('c-lf', m, c)?.tps))).join(' | ')} |`);
lines.push(`| **ibas / ${KOFFI_SIDE} TPS** | ${cols.map(([m, c]) => fmt(q(find('ibas', m, c)?.tps, find(KOFFI_SIDE, m, c)?.tps))).join(' | ')} |`);
lines.push(`| **TS echo / .so echo TPS** | ${cols.map(([m, c]) => fmt(q(find(TS_SIDE, m, c)?.tps, find('ibas', m, c)?.tps))).join(' | ')} |`);
lines.push(`| **log warn / log info CPU per tx (the transaction line's share)** | ${cols.map(([m, c]) => fmt(q(find(QUIET_SIDE, m, c)?.cpu, find('ibas', m, c)?.cpu))).join(' | ')} |`);
lines.push(`| **TS echo / .so echo CPU per tx** | ${cols.map(([m, c]) => fmt(q(find(TS_SIDE, m, c)?.cpu, find('ibas', m, c)?.cpu))).join(' | ')} |`);
lines.push('');
lines.push('"served a/b": only a of the b connections got an answer during the run: a pre-fork pool of W blocking workers serves at most W long connections at a time (the model, not a fault; see the bench anchors\' README).');
lines.push('');
lines.push('### Where the server CPU per transaction goes (user space + kernel, µs, medians)');
lines.push('');
lines.push('utime and stime of the same processes over the same windows (/proc/<pid>/stat). The kernel part is the TCP and scheduling work every server pays; the user-space part is the server\'s own code.');
lines.push('');
lines.push(`| server | ${cols.map(([m, c]) => `${m} c=${c}`).join(' | ')} |`);
lines.push(`|---|${cols.map(() => '---:').join('|')}|`);
const split = (r) => (r && r.user !== undefined ? `${r.user.toFixed(1)} + ${(r.cpu - r.user).toFixed(1)}` : '-');
for (const server of ['ibas', QUIET_SIDE, 'c-lf', KOFFI_SIDE, NODE_NET]) lines.push(`| ${server} | ${cols.map(([m, c]) => split(find(server, m, c))).join(' | ')} |`);
lines.push(`| **ibas − c-lf, user space** | ${cols.map(([m, c]) => { const i = find('ibas', m, c); const k = find('c-lf', m, c); return i && k ? (i.user - k.user).toFixed(1) : '-'; }).join(' | ')} |`);
lines.push(`| **ibas − ${KOFFI_SIDE}, user space** | ${cols.map(([m, c]) => { const i = find('ibas', m, c); const k = find(KOFFI_SIDE, m, c); return i && k ? (i.user - k.user).toFixed(1) : '-'; }).join(' | ')} |`);
lines.push(`| **ibas − c-lf, kernel** | ${cols.map(([m, c]) => { const i = find('ibas', m, c); const k = find('c-lf', m, c); return i && k ? ((i.cpu - i.user) - (k.cpu - k.user)).toFixed(1) : '-'; }).join(' | ')} |`);
lines.push('');
lines.push('## HTTP, wrk, keep-alive, c=16 (median TPS · p50/p99 µs · server CPU µs/tx)');
lines.push('');
if (wrkRows.length) {
  lines.push('| server | TPS · p50/p99 · CPU | errors |');
  lines.push('|---|---:|---:|');
  for (const w of wrkRows) lines.push(`| ${w.server} | ${w.tps} · ${w.p50_us}/${w.p99_us} · ${w.cpu} | ${w.errors} |`);
  if (wI && wN) lines.push(`| **ratio ibas / ${NODE_HTTP}** | ${fmt(q(wI.tps, wN.tps))} | |`);
} else {
  lines.push(wrkNote);
}
lines.push('');
lines.push('## Signed and encrypted transactions through ibac (median TPS (min..max) · p50/p99 µs · server CPU µs/tx)');
lines.push('');
if (signRows.length) {
  const sc = (v, m, c) => signRows.find((r) => r.variant === v && r.mode === m && r.conc === c);
  lines.push(`The same ibas (sign_flag and encrypt_flag optional, the node's key in its config space) driven by ibac (test/bench/ibas-sign-client.mjs, ${SIGN_SIZE}-byte echo): plain, signed (Ed25519-signed hello, X25519 + HKDF exchange keys, AES-256-GCM tag on every packet), signed and encrypted. ibac waits for the PRE_ANSWER before it sends the request (two round trips), unlike the pipelined C client above: compare these rows with each other only. Short connections open a new ephemeral X25519 key per connection; long ones reuse it.`);
  lines.push('');
  lines.push(`| variant | ${SIGN_CELLS.map(([m, c]) => `${m} c=${c}`).join(' | ')} | errors |`);
  lines.push(`|---|${SIGN_CELLS.map(() => '---:').join('|')}|---:|`);
  for (const [v] of SIGN_VARIANTS) lines.push(`| ${v} | ${SIGN_CELLS.map(([m, c]) => cell(sc(v, m, c))).join(' | ')} | ${SIGN_CELLS.reduce((n, [m, c]) => n + (sc(v, m, c)?.errors ?? 0), 0)} |`);
  for (const v of ['sign', 'sign+encrypt']) {
    lines.push(`| **${v} / plain TPS** | ${SIGN_CELLS.map(([m, c]) => fmt(q(sc(v, m, c)?.tps, sc('plain', m, c)?.tps))).join(' | ')} | |`);
    lines.push(`| **${v} / plain server CPU per tx** | ${SIGN_CELLS.map(([m, c]) => fmt(q(sc(v, m, c)?.cpu, sc('plain', m, c)?.cpu))).join(' | ')} | |`);
  }
} else {
  lines.push('skipped (SIGN_CELLS empty)');
}
lines.push('');
lines.push('## ibas worker RSS (plain echo, long connection, c=1, on the fresh ibas)');
lines.push('');
if (rss.points.length) {
  const mb = (k) => (k / 1024).toFixed(1);
  lines.push('RssAnon is the worker\'s private memory, RssFile mapped files (mostly the `node` binary\'s own code, shared by every Node process), RssShmem the SysV segments it touched (scoreboard, config space, app stats; the replay cache once signed transactions came).');
  lines.push('');
  lines.push('| after transactions | RSS per worker (MB) | anon / file / shmem (MB, per worker) | errors |');
  lines.push('|---:|---|---|---:|');
  for (const pt of [...rss.points, ...(rss.after ? [rss.after] : [])]) lines.push(`| ${pt.tx} | ${pt.kb.map((k) => mb(k.rss)).join(', ')} | ${pt.kb.map((k) => `${mb(k.anon)} / ${mb(k.file)} / ${mb(k.shmem)}`).join(', ')} | ${pt.errors} |`);
} else {
  lines.push('skipped (RSS_TX=0)');
}
lines.push('');
lines.push('## Goals of issue 9 in this run');
lines.push('');
lines.push('| goal | measured | met |');
lines.push('|---|---:|---|');
for (const [goal, x, ok, unit] of goals) lines.push(`| ${goal} | ${x === undefined ? '-' : unit ? `${x.toFixed(1)} ${unit}` : `${x.toFixed(2)}×`} | ${x === undefined ? 'not measured' : ok(x) ? 'yes' : '**no**'} |`);
lines.push('');
lines.push('## Raw');
lines.push('');
lines.push('```');
for (const r of runs) lines.push(JSON.stringify(r));
for (const w of wrkRuns) lines.push(JSON.stringify(w));
for (const r of signRuns) lines.push(JSON.stringify({ ibac: r.variant, ...r }));
for (const pt of [...rss.points, ...(rss.after ? [rss.after] : [])]) lines.push(JSON.stringify({ rss_after_tx: pt.tx, kb: pt.kb }));
lines.push('```');
const outFile = path.resolve(ROOT, 'docs/bench', process.env.BENCH_OUT ?? 'ibas.md'); // BENCH_OUT: another file (absolute or under docs/bench)
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, `${lines.join('\n')}\n`);
log('');
log(lines.slice(lines.findIndex((l) => l.startsWith('## Echo over TCP')), lines.indexOf('## Raw')).join('\n'));
log(`written ${path.relative(ROOT, outFile)}`);
