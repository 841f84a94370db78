#!/usr/bin/env node
// npm run bench:e2e — transactions through the ibac client library against a minimal raw-socket
// client speaking the same protocol, to the same ibas server, in one run; writes docs/bench/e2e.md.
//
//   server: ibas (STATIC_WORKERPOOL, WORKERS workers, ibp_test_echo.so) in a home of its own
//   config: the server's and the client's config spaces published with ConfigSpaceWriter (what
//           ibma does; no registry needed to measure the client)
//   ibac:   long  = env.connect() once, then conn.sendRequestAndReceiveResponse() in a loop
//           short = env.requester() (host choice, connect, transaction, disconnect) in a loop
//   raw:    net.Socket + the protocol's encoder/decoder, frames pre-encoded, the same four
//           packets (PRE_REQUEST, wait PRE_ANSWER, REQUEST, wait RESPONSE), no host choice, no
//           load writes, no journal, no error typing — the least a client can do
//   for long and short connections at concurrency 1 and 16: TPS, p50 and p99 — and ibac / raw.
//
// Both clients run in this process, one after the other, ROUNDS times interleaved (the best round
// of each is kept). Bounded: each run lasts WARMUP + DURATION seconds (or MAX_TX transactions);
// the server is stopped by its pid and every segment removed, also on Ctrl-C.
//
// Env: WORKERS (16: a pre-fork pool serves at most WORKERS long connections), DURATION (3),
//      WARMUP (1), ROUNDS (3), MSG_SIZE (100), CONCS ("1 16"), MODES ("long short"), MAX_TX (1e6)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, alive, dist, freePort, gitCommit, log, loopbackIp, sleep, waitFor } from './harness.mjs';


const WORKERS = Number(process.env.WORKERS ?? 16);
const DURATION = Number(process.env.DURATION ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 1);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const MSG_SIZE = Number(process.env.MSG_SIZE ?? 100);
const CONCS = (process.env.CONCS ?? '1 16').split(/\s+/).filter(Boolean).map(Number);
const MODES = (process.env.MODES ?? 'long short').split(/\s+/).filter(Boolean);
const MAX_TX = Number(process.env.MAX_TX ?? 1e6);
const APP = 'ibp_test_echo';
const IP = loopbackIp();

const { initHome } = await dist('ibma/init.js');
const { ConfigSpaceWriter } = await dist('lib/shm/config-segment.js');
const { homeKeyBase, KEY_SLOT } = await dist('lib/shm/keys.js');
const { defaultConf } = await dist('ibas/init.js');
const { Home } = await dist('lib/home.js');
const { destroySegment } = await dist('lib/shm/sysv.js');
const { encodePacket, decodePacket, TX_FLAG } = await dist('lib/protocol/codec.js');
const { FrameReader, DEFAULT_LIMITS } = await dist('lib/protocol/frame.js');
const ibac = await dist('ibac/index.js');


const freePortHere = () => freePort(IP);


async function stopPid(pid, ms = 40_000) {
  if (!pid || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}


// ------------------------------------------------------------ the cluster: one server, one client node

const SETTINGS = { ibms: { ip: IP, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 1024 };
const APP_CONF = { app: APP, desc: 'echo', bin: `${APP}.so`, timeout: 10, timeout2: 0, invalid: 0, server_node: 'SRV', sha256: '', size: 0 };

async function startCluster(tmp) {
  const port = await freePortHere();
  const nodes = [{ node: 'SRV', invalid: 0, hosts: [{ ip: IP, port }], kvs: {} }, { node: 'CLI', invalid: 0, hosts: [], kvs: {} }];
  const stops = [];
  const home = (name, node) => {
    const dir = path.join(tmp, `${name}-home`);
    fs.mkdirSync(dir, { recursive: true });
    const h = new Home(dir);
    const indexKey = homeKeyBase(dir) + KEY_SLOT.INDEX;
    initHome(h, h.etc('ibma.conf'), { node, ibmsIp: IP, ibmsPort: 1, credential: 'b'.repeat(32), indexKey });
    const writer = new ConfigSpaceWriter(indexKey);
    writer.publish({ epoch: 'bench', version: 1, this_node: node, nodes, apps: [APP_CONF] }, SETTINGS);
    stops.push(async () => writer.removeAll());
    return h;
  };
  const srv = home('srv', 'SRV');
  const cli = home('cli', 'CLI');
  fs.copyFileSync(path.join(ROOT, 'build/apps', `${APP}.so`), srv.so(`${APP}.so`));
  const conf = defaultConf({ ip: IP, port, mode: 'STATIC_WORKERPOOL', maxCount: WORKERS, maxProcessCount: 0 }, srv.etc('ibas.conf'));
  conf.monitor.heartbeat_interval = 3600;
  fs.writeFileSync(srv.etc('ibas.conf'), JSON.stringify(conf, null, 2));
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/ibas'), '-f', srv.etc('ibas.conf'), '-a', 'start'], { encoding: 'utf8', env: { ...process.env, IBP_HOME: srv.root }, timeout: 180_000 });
  if (r.status !== 0) throw new Error(`ibas -a start failed: ${r.stderr}`);
  const pid = Number(fs.readFileSync(srv.run('ibas.pid'), 'utf8'));
  stops.unshift(async () => {
    await stopPid(pid);
    destroySegment(homeKeyBase(srv.root) + KEY_SLOT.SCOREBOARD);
  });
  return {
    port, pid, cliConf: cli.etc('ibma.conf'),
    async stop() {
      for (const s of stops.splice(0)) await s().catch((e) => log(`cleanup: ${e.message}`));
    },
  };
}

// ------------------------------------------------------------ the raw client

class RawConn {
  #sock;
  #reader = new FrameReader(DEFAULT_LIMITS.maxFrame);
  #queue = [];
  #waiter;
  #error;

  static open(port) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: IP, port }, () => {
        s.off('error', reject);
        resolve(new RawConn(s));
      });
      s.once('error', reject);
    });
  }

  constructor(sock) {
    this.#sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (c) => {
      for (const f of this.#reader.push(c)) {
        const p = decodePacket(f, DEFAULT_LIMITS);
        if (this.#waiter) {
          const w = this.#waiter;
          this.#waiter = undefined;
          w.resolve(p);
        } else this.#queue.push(p);
      }
    });
    const fail = (e) => {
      this.#error = e ?? new Error('closed');
      this.#waiter?.reject(this.#error);
      this.#waiter = undefined;
    };
    sock.on('error', fail);
    sock.on('close', () => fail());
  }

  #next() {
    if (this.#queue.length) return Promise.resolve(this.#queue.shift());
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  async tx(pre, req) {
    this.#sock.write(pre);
    const a = await this.#next();
    if (a.type !== 'PRE_ANSWER' || a.rc !== 0) throw new Error(`pre-answer ${a.type} rc ${a.rc}`);
    this.#sock.write(req);
    const r = await this.#next();
    if (r.type !== 'RESPONSE' || r.rc !== 0) throw new Error(`response ${r.type} rc ${r.rc}`);
    return r.body;
  }

  close() {
    this.#sock.end();
  }
}

// ------------------------------------------------------------ one run

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(kind, mode, conc, cluster, env) {
  const msg = Buffer.alloc(MSG_SIZE, 'x');
  const pre = encodePacket({ type: 'PRE_REQUEST', flags: TX_FLAG.COMPRESS, fileCount: 0, timeoutMs: 10_000, clientNode: 'CLI', app: APP, journal: 'raw' });
  const req = encodePacket({ type: 'REQUEST', body: msg });
  const lat = [];
  let count = 0;
  let errors = 0;
  let firstError;
  const start = performance.now();
  const measureFrom = start + WARMUP * 1000;
  const end = measureFrom + DURATION * 1000;
  let measured = 0;
  const record = (t0) => {
    const t1 = performance.now();
    if (t0 >= measureFrom && t1 <= end) {
      lat.push(t1 - t0);
      measured++;
    }
    count++;
  };
  const more = () => performance.now() < end && count < MAX_TX;
  const loop = async () => {
    if (kind === 'raw') {
      if (mode === 'long') {
        const c = await RawConn.open(cluster.port);
        while (more()) {
          const t0 = performance.now();
          await c.tx(pre, req);
          record(t0);
        }
        c.close();
      } else {
        while (more()) {
          const t0 = performance.now();
          const c = await RawConn.open(cluster.port);
          await c.tx(pre, req);
          c.close();
          record(t0);
        }
      }
    } else if (mode === 'long') {
      const c = await env.connect('SRV', APP);
      while (more()) {
        const t0 = performance.now();
        await c.sendRequestAndReceiveResponse(APP, msg);
        record(t0);
      }
      c.disconnect();
    } else {
      while (more()) {
        const t0 = performance.now();
        await env.requester('SRV', APP, msg);
        record(t0);
      }
    }
  };
  const workers = Array.from({ length: conc }, () => loop().catch((e) => {
    errors++;
    firstError ??= e;
  }));
  await Promise.all(workers);
  if (firstError) log(`  ${kind} ${mode} c=${conc}: ${errors} loop(s) failed: ${firstError.message}`);
  const windowMs = Math.min(performance.now(), end) - measureFrom;
  lat.sort((a, b) => a - b);
  return {
    kind, mode, conc, tps: Math.round(measured / (windowMs / 1000)), count: measured,
    p50_us: Math.round(percentile(lat, 50) * 1000), p99_us: Math.round(percentile(lat, 99) * 1000), errors,
  };
}

// ------------------------------------------------------------ main

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-bench-'));
const started = new Date();
const load0 = os.loadavg();
const rows = [];
const allRuns = [];
let cluster;
let env;
const cleanup = async () => {
  env?.destroy();
  await cluster?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup().finally(() => process.exit(130));
});
try {
  log(`e2e bench: ibas with ${WORKERS} workers, ${MSG_SIZE}-byte echo, ${DURATION} s (+${WARMUP} s warm-up) per run, ${ROUNDS} rounds, loopback ${IP}`);
  cluster = await startCluster(tmp);
  env = ibac.createEnvironment({ config: cluster.cliConf });
  // ready when every worker answers
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await env.requester('SRV', APP, 'ready?');
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(200);
    }
  }
  for (const mode of MODES) for (const conc of CONCS) {
    const best = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of ['raw', 'ibac']) {
        const r = await run(kind, mode, conc, cluster, env);
        allRuns.push({ round: round + 1, ...r });
        log(`${kind.padEnd(4)} ${mode.padEnd(5)} c=${String(conc).padEnd(2)} round ${round + 1}: ${r.tps} tps p50 ${r.p50_us} us p99 ${r.p99_us} us${r.errors ? ` errors ${r.errors}` : ''}`);
        if (!best[kind] || r.tps > best[kind].tps) best[kind] = r;
      }
    }
    rows.push(best.raw, best.ibac);
  }
  // a short-lived environment per call (IBP's short process): environment + connection each time
  const shortEnv = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await ibac.requester('SRV', APP, 'short env', undefined, { config: cluster.cliConf });
    shortEnv.push(performance.now() - t0);
  }
  shortEnv.sort((a, b) => a - b);
  rows.push({ kind: 'ibac', mode: 'short env', conc: 1, tps: Math.round(1000 / (shortEnv.reduce((a, b) => a + b, 0) / shortEnv.length)), count: shortEnv.length, p50_us: Math.round(percentile(shortEnv, 50) * 1000), p99_us: Math.round(percentile(shortEnv, 99) * 1000), errors: 0 });
} finally {
  await cleanup();
}

// ------------------------------------------------------------ report

const find = (kind, mode, conc) => rows.find((r) => r.kind === kind && r.mode === mode && r.conc === conc);
const lines = [];
lines.push('# End-to-end benchmark: ibac client library vs a raw-socket client');
lines.push('');
lines.push(`Written by \`npm run bench:e2e\` (test/bench/e2e.bench.mjs). Run ${started.toISOString()}, git ${gitCommit()}.`);
lines.push('');
lines.push('## Parameters and machine');
lines.push('');
lines.push(`- server: ibas STATIC_WORKERPOOL, ${WORKERS} workers, app ${APP}.so (echo), ${MSG_SIZE}-byte requests; loopback only.`);
lines.push(`- ${DURATION} s measured per run after ${WARMUP} s warm-up; ${ROUNDS} rounds, raw and ibac interleaved; the best round of each is kept.`);
lines.push('- ibac: long = one `env.connect()` per worker loop, then `sendRequestAndReceiveResponse()`; short = `env.requester()` (host choice from the config space, connect, transaction, disconnect, one CAS load write per answer).');
lines.push('- raw: `net.Socket` with the protocol codec, pre-encoded frames, the same four packets (waits for PRE_ANSWER before the REQUEST, as ibac does); no host choice, no load writes, no journal numbers, no typed errors.');
lines.push('- both clients run in this one Node process (one core for the client side); the server has its own processes. Config spaces are published with ConfigSpaceWriter (what ibma does).');
lines.push(`- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, Node ${process.version}.`);
lines.push(`- load average at the start: ${load0.map((x) => x.toFixed(2)).join(', ')} (the machine is shared with other work: absolute numbers are noisy; the ratio comes from runs made side by side).`);
lines.push('');
lines.push('## Transactions per second and latency');
lines.push('');
lines.push('| connections | concurrency | raw TPS | raw p50 / p99 µs | ibac TPS | ibac p50 / p99 µs | ibac / raw TPS | ibac / raw p99 |');
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const mode of MODES) for (const conc of CONCS) {
  const raw = find('raw', mode, conc);
  const lib = find('ibac', mode, conc);
  if (!raw || !lib) continue;
  lines.push(`| ${mode} | ${conc} | ${raw.tps} | ${raw.p50_us} / ${raw.p99_us} | ${lib.tps} | ${lib.p50_us} / ${lib.p99_us} | ${(lib.tps / raw.tps).toFixed(2)} | ${(lib.p99_us / raw.p99_us).toFixed(2)} |`);
}
const se = find('ibac', 'short env', 1);
if (se) {
  lines.push('');
  lines.push(`Short-lived environment per call (\`requester()\` creating and destroying the environment: read ibma.conf, attach the config space, connect, transaction, detach), concurrency 1, ${se.count} calls: ${se.tps} TPS, p50 ${se.p50_us} µs, p99 ${se.p99_us} µs.`);
}
lines.push('');
lines.push('The ratio ibac / raw TPS is the library\'s overhead: 1.00 = none. Short connections are dominated by connect and accept; long ones by the two round trips of the four-packet exchange.');
lines.push('At concurrency 1 the ratio is the per-transaction cost of the library (host choice, journal, typed errors, load CAS writes, files handling). At concurrency 16 both clients share one event loop with 16 server workers on the same cores: there the scheduling (when each client yields to the event loop; ibac waits for the REQUEST\'s write callback) weighs more than the library\'s own work, and ibac came out ahead in every round of the runs made so far — read those ratios as "no measurable overhead at this concurrency", not as a speed-up (not investigated further).');
lines.push('');
lines.push('## Raw');
lines.push('');
lines.push('Every run, in the order made (the spread between rounds shows the noise of the shared machine):');
lines.push('');
lines.push('```');
for (const r of allRuns) lines.push(JSON.stringify(r));
lines.push(JSON.stringify(find('ibac', 'short env', 1)));
lines.push('```');
fs.mkdirSync(path.join(ROOT, 'docs/bench'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'docs/bench/e2e.md'), `${lines.join('\n')}\n`);
log('');
log(lines.slice(lines.indexOf('## Transactions per second and latency'), lines.indexOf('## Raw')).join('\n'));
log('written docs/bench/e2e.md');
