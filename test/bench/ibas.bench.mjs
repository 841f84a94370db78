#!/usr/bin/env node
// npm run bench:ibas — echo transactions through ibas next to a bare Node cluster, in one run,
// driven by the same load generator, and the results written to docs/bench/ibas.md.
//
//   ibas (STATIC_WORKERPOOL, WORKERS workers, ibp_test_echo.so)    -P ibp   (IBP-TS protocol)
//   bare Node cluster + net echo server (WORKERS workers)           -P tdhb  (4-digit length + body)
//   for short and long connections at concurrency 1 and 16: TPS, p50, p99 — and the ratios
//   wrk against ibas's HTTP adapter (POST /ibp/ibp_test_echo) and a bare Node cluster http echo
//
// The load generator is test/bench/ibas-echoclient.c (the bench anchors' echoclient.c with the
// IBP protocol added), built here with gcc. wrk is apt-get installed when missing (INSTALL_WRK=0
// skips that; the wrk rows are then marked missing). Bounded: every run lasts WARMUP + DURATION
// seconds; every server is stopped by the pid it was started with.
//
// Env: WORKERS (2), DURATION (3), RUNS (3, interleaved; medians reported), WARMUP (1), MSG_SIZE (100), CONCS ("1 16"), MODES ("short long"),
//      POLICY (none | rr: the Node cluster scheduling of the baseline; none = workers share the
//      listen socket, the closest to pre-fork), LOG_LEVEL (info: ibas's transaction log on, as shipped),
//      IBAS_NODE_ARGS (node flags for the ibas processes, e.g. --prof), KEEP=1 (keep the temporary folder)
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, alive, dist, freePort, gitCommit, log, loopbackIp, sleep, waitFor } from './harness.mjs';

const HERE = path.join(ROOT, 'test', 'bench');


const WORKERS = Number(process.env.WORKERS ?? 2);
const DURATION = Number(process.env.DURATION ?? 3);
const RUNS = Number(process.env.RUNS ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 1);
const MSG_SIZE = Number(process.env.MSG_SIZE ?? 100);
const CONCS = (process.env.CONCS ?? '1 16').split(/\s+/).filter(Boolean).map(Number);
const MODES = (process.env.MODES ?? 'short long').split(/\s+/).filter(Boolean);
const POLICY = process.env.POLICY ?? 'none';
const LOG_LEVEL = process.env.LOG_LEVEL ?? 'info';
const IP = loopbackIp();

const { initHome } = await dist('ibma/init.js');
const { ConfigSpaceWriter } = await dist('lib/shm/config-segment.js');
const { homeKeyBase, KEY_SLOT } = await dist('lib/shm/keys.js');
const { defaultConf } = await dist('ibas/init.js');
const { Home } = await dist('lib/home.js');
const { Scoreboard } = await dist('ibas/scoreboard.js');
const { destroySegment } = await dist('lib/shm/sysv.js');


const freePortHere = () => freePort(IP);



/** Stop a process we started: SIGTERM, then SIGKILL after a deadline. */
async function stopPid(pid, ms = 15_000) {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

// ------------------------------------------------------------ load generators

function buildClient(tmp) {
  const out = path.join(tmp, 'ibas-echoclient');
  execFileSync('gcc', ['-O2', '-pthread', '-o', out, path.join(HERE, 'ibas-echoclient.c')], { stdio: 'inherit' });
  return out;
}

function echoclient(bin, { port, proto, mode, conc, uri }) {
  const args = ['-H', IP, '-p', String(port), '-P', proto, '-m', mode, '-c', String(conc), '-d', String(DURATION), '-w', String(WARMUP), '-s', String(MSG_SIZE)];
  if (uri) args.push('-u', uri);
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: (DURATION + WARMUP + 30) * 1000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`echoclient ${args.join(' ')} gave no RESULT: ${r.stderr}`);
  return Object.fromEntries(line.slice(7).trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, v]) => [k, Number.isNaN(Number(v)) ? v : Number(v)]));
}

function ensureWrk() {
  if (spawnSync('wrk', ['-v']).error === undefined) return true;
  if (process.env.INSTALL_WRK === '0') return false;
  log('wrk missing: apt-get install -y wrk');
  const r = spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: 'inherit', timeout: 300_000 });
  return r.status === 0 && spawnSync('wrk', ['-v']).error === undefined;
}

function wrk(url, conc) {
  const r = spawnSync('wrk', ['-t', String(Math.min(conc, 2)), '-c', String(conc), '-d', `${DURATION}s`, '--timeout', '5s', '-s', path.join(HERE, 'ibas-wrk-post.lua'), url], {
    encoding: 'utf8', env: { ...process.env, MSG_SIZE: String(MSG_SIZE) }, timeout: (DURATION + 30) * 1000,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('WRKRESULT '));
  if (!line) throw new Error(`wrk gave no WRKRESULT: ${r.stdout}${r.stderr}`);
  const v = Object.fromEntries(line.slice(10).trim().split(/\s+/).map((kv) => kv.split('=')).map(([k, x]) => [k, Number(x)]));
  return { tps: Math.round(v.requests / (v.duration_us / 1e6)), p50_us: v.p50_us, p99_us: v.p99_us, errors: v.err_connect + v.err_read + v.err_write + v.err_timeout + v.err_status };
}

// ------------------------------------------------------------ servers

async function startIbas(tmp) {
  const home = path.join(tmp, 'ibas-home');
  fs.mkdirSync(home, { recursive: true });
  const h = new Home(home);
  const port = await freePortHere();
  const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;
  initHome(h, h.etc('ibma.conf'), { node: 'BENCH', ibmsIp: IP, ibmsPort: 1, credential: 'b'.repeat(32), indexKey });
  fs.copyFileSync(path.join(ROOT, 'build/apps/ibp_test_echo.so'), h.so('ibp_test_echo.so'));
  const writer = new ConfigSpaceWriter(indexKey);
  writer.publish({
    epoch: 'bench', version: 1, this_node: 'BENCH',
    nodes: [{ node: 'BENCH', invalid: 0, hosts: [{ ip: IP, port }], kvs: {} }],
    apps: [{ app: 'ibp_test_echo', desc: 'echo', bin: 'ibp_test_echo.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'BENCH', sha256: '', size: 0 }],
  }, { ibms: { ip: IP, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 1 << 20 });
  const conf = defaultConf({ ip: IP, port, mode: 'STATIC_WORKERPOOL', maxCount: WORKERS, maxProcessCount: 0 }, h.etc('ibas.conf'));
  conf.log.level = LOG_LEVEL;
  conf.monitor.heartbeat_interval = 3600;
  fs.writeFileSync(h.etc('ibas.conf'), JSON.stringify(conf, null, 2));
  const nodeArgs = (process.env.IBAS_NODE_ARGS ?? '').split(/\s+/).filter(Boolean); // e.g. --prof (workers inherit the manager's)
  const r = spawnSync(process.execPath, [...nodeArgs, path.join(ROOT, 'bin/ibas'), '-f', h.etc('ibas.conf'), '-a', 'start'], { encoding: 'utf8', env: { ...process.env, IBP_HOME: home }, timeout: 120_000 });
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
  return {
    port, pid,
    async stop() {
      await stopPid(pid, 40_000);
      writer.removeAll();
      destroySegment(sbKey);
    },
  };
}

async function startNode(script) {
  const port = await freePortHere();
  const child = spawn(process.execPath, [path.join(HERE, script)], {
    env: { ...process.env, PORT: String(port), HOST: IP, WORKERS: String(WORKERS), NODE_CLUSTER_SCHED_POLICY: POLICY },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  await waitFor(`${script} ready`, () => out.includes('READY'));
  return {
    port, pid: child.pid,
    async stop() {
      const gone = new Promise((r) => child.once('exit', r));
      await stopPid(child.pid);
      await gone;
    },
  };
}

// ------------------------------------------------------------ run


const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibas-bench-'));
const started = new Date();
const LOAD_START = os.loadavg().map((x) => x.toFixed(1)).join(' ');
const rows = [];
const wrkRows = [];
const runs = [];
const wrkRuns = [];
const servers = [];
process.on('SIGINT', async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  process.exit(130);
});
try {
  const client = buildClient(tmp);
  log(`ibas bench: ${WORKERS} workers, ${MSG_SIZE}-byte echo, ${RUNS} runs of ${DURATION} s (+${WARMUP} s warm-up) per cell, interleaved, loopback ${IP}`);
  // both servers up at once; each cell runs ibas then node back to back, RUNS times: the
  // machine's load swings hit both sides alike, and the median per cell is reported
  const ibas = await startIbas(tmp);
  servers.push(ibas);
  const node = await startNode('ibas-baseline-net.cjs');
  servers.push(node);
  const haveWrk = ensureWrk();
  const http = haveWrk ? await startNode('ibas-baseline-http.cjs') : undefined;
  if (http) servers.push(http);
  const sides = [
    { server: 'ibas', port: ibas.port, proto: 'ibp', uri: 'ibp_test_echo' },
    { server: `node-net-${POLICY}`, port: node.port, proto: 'tdhb' },
  ];
  for (let run = 1; run <= RUNS; run++) {
    for (const mode of MODES) for (const conc of CONCS) for (const side of sides) {
      const r = echoclient(client, { port: side.port, proto: side.proto, mode, conc, uri: side.uri });
      runs.push({ server: side.server, mode, conc, run, ...r });
      log(`run ${run} ${side.server.padEnd(14)} ${mode.padEnd(5)} c=${String(conc).padEnd(2)} ${r.tps} tps p50 ${r.p50_us} us p99 ${r.p99_us} us served ${r.served} errors ${r.err_connect + r.err_io + r.err_proto}`);
    }
    if (http) {
      for (const [server, url] of [['ibas HTTP adapter', `http://${IP}:${ibas.port}/ibp/ibp_test_echo`], [`node-http-${POLICY}`, `http://${IP}:${http.port}/echo`]]) {
        const w = wrk(url, 16);
        wrkRuns.push({ server, run, ...w });
        log(`run ${run} ${server.padEnd(17)} wrk c=16 ${w.tps} tps p50 ${w.p50_us} us p99 ${w.p99_us} us errors ${w.errors}`);
      }
    }
  }
  const median = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  for (const side of sides) for (const mode of MODES) for (const conc of CONCS) {
    const rs = runs.filter((r) => r.server === side.server && r.mode === mode && r.conc === conc);
    rows.push({
      server: side.server, mode, conc,
      tps: Math.round(median(rs.map((r) => r.tps))), p50_us: Math.round(median(rs.map((r) => r.p50_us))), p99_us: Math.round(median(rs.map((r) => r.p99_us))),
      tps_min: Math.round(Math.min(...rs.map((r) => r.tps))), tps_max: Math.round(Math.max(...rs.map((r) => r.tps))),
      served: rs[rs.length - 1].served, errors: rs.reduce((n, r) => n + r.err_connect + r.err_io + r.err_proto, 0),
    });
  }
  for (const server of [...new Set(wrkRuns.map((w) => w.server))]) {
    const ws = wrkRuns.filter((w) => w.server === server);
    wrkRows.push({ server, tps: Math.round(median(ws.map((w) => w.tps))), p50_us: median(ws.map((w) => w.p50_us)), p99_us: median(ws.map((w) => w.p99_us)), errors: ws.reduce((n, w) => n + w.errors, 0) });
  }
} finally {
  for (const s of servers) await s.stop().catch(() => undefined);
  if (process.env.KEEP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
  else log(`kept ${tmp}`);
}

// ------------------------------------------------------------ report

const cell = (r) => (r ? `${r.tps} (${r.tps_min}..${r.tps_max}) · ${r.p50_us}/${r.p99_us}${r.served && !String(r.served).startsWith(`${r.conc}/`) ? ` (served ${r.served})` : ''}` : '-');
const find = (server, mode, conc) => rows.find((r) => r.server === server && r.mode === mode && r.conc === conc);
const cols = MODES.flatMap((m) => CONCS.map((c) => [m, c]));
const ratio = (a, b) => (a && b && b.tps > 0 ? (a.tps / b.tps).toFixed(2) : '-');
const lines = [];
lines.push('# ibas echo benchmark');
lines.push('');
lines.push(`Written by \`npm run bench:ibas\` (test/bench/ibas.bench.mjs). Run ${started.toISOString()}, git ${gitCommit()}.`);
lines.push('');
lines.push('## Parameters and machine');
lines.push('');
lines.push(`- ${WORKERS} workers each side; ${MSG_SIZE}-byte echo; ${RUNS} runs per cell of ${DURATION} s measured after ${WARMUP} s warm-up, ibas and node back to back in each cell (interleaved); medians, TPS min..max in parentheses; loopback only.`);
lines.push(`- ibas: STATIC_WORKERPOOL, app ibp_test_echo.so, IBP-TS binary protocol pipelined (PRE_REQUEST + REQUEST in one write, PRE_ANSWER + RESPONSE back), log level \`${LOG_LEVEL}\` (one transaction log line per transaction).`);
lines.push(`- baseline: bare Node \`cluster\` + \`net\` echo (test/bench/ibas-baseline-net.cjs, NODE_CLUSTER_SCHED_POLICY=${POLICY}), 4-digit length framing.`);
lines.push('- load generator: test/bench/ibas-echoclient.c (the bench anchors\' echoclient with `-P ibp`), the same binary for both; it shares the cores with the servers.');
lines.push(`- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, Node ${process.version}. Load average at the start ${LOAD_START}, at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine during the run adds noise: compare rows of the same run only).`);
lines.push('');
lines.push('## Echo over TCP (median TPS (min..max) · p50/p99 µs)');
lines.push('');
lines.push(`| server | ${cols.map(([m, c]) => `${m} c=${c}`).join(' | ')} |`);
lines.push(`|---|${cols.map(() => '---:').join('|')}|`);
for (const server of ['ibas', `node-net-${POLICY}`]) lines.push(`| ${server} | ${cols.map(([m, c]) => cell(find(server, m, c))).join(' | ')} |`);
lines.push(`| **ratio ibas / node (TPS)** | ${cols.map(([m, c]) => ratio(find('ibas', m, c), find(`node-net-${POLICY}`, m, c))).join(' | ')} |`);
lines.push('');
lines.push('"served a/b": only a of the b connections got an answer during the run: a pre-fork pool of W blocking workers serves at most W long connections at a time (the model, not a fault; see the bench anchors\' README).');
lines.push('');
lines.push('## HTTP, wrk, long connections, c=16 (median TPS · p50/p99 µs)');
lines.push('');
if (wrkRows.length) {
  lines.push('| server | TPS · p50/p99 | errors |');
  lines.push('|---|---:|---:|');
  for (const w of wrkRows) lines.push(`| ${w.server} | ${w.tps} · ${w.p50_us}/${w.p99_us} | ${w.errors} |`);
  if (wrkRows.length === 2) lines.push(`| **ratio** | ${(wrkRows[0].tps / wrkRows[1].tps).toFixed(2)} | |`);
} else {
  lines.push('wrk was not available (INSTALL_WRK=0 or the install failed): no HTTP rows.');
}
lines.push('');
lines.push('## Raw');
lines.push('');
lines.push('```');
for (const r of runs) lines.push(JSON.stringify(r));
for (const w of wrkRuns) lines.push(JSON.stringify(w));
lines.push('```');
fs.mkdirSync(path.join(ROOT, 'docs/bench'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'docs/bench/ibas.md'), `${lines.join('\n')}\n`);
log('');
log(lines.slice(lines.indexOf('## Echo over TCP (median TPS (min..max) · p50/p99 µs)'), lines.indexOf('## Raw')).join('\n'));
log('written docs/bench/ibas.md');
