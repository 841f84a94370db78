// bench:resilience — a real ibas (static pool) under a client load of a fixed count of
// transactions per phase, while, in turn:
//   baseline   nothing happens (the p99 to compare against)
//   update     the app's .so is replaced by rename (v1 → v2) at 25 % of the phase
//   upgrade    SIGUSR2 to the manager at 25 % of the phase (new generation, handover)
//   kill       kill -9 of a random worker every second during the phase
// For each: transactions attempted, failed, reconnects (POOL_STOPPING: nothing ran, retried),
// p99 of the phase and p99 inside the event window, against the baseline p99 (the ratio).
// Clients: LOOPS long-connection loops + 1 short-connection loop, in this process, speaking the
// binary protocol through dist/lib/protocol. Results → docs/bench/resilience.md.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, alive, dist, freePort, gitCommit, log, loopbackIp, sleep, waitFor } from './harness.mjs';


const WORKERS = Number(process.env.WORKERS ?? 4);
const LOOPS = Number(process.env.LOOPS ?? 2);
const TX = Number(process.env.TX ?? 6000);
const TX_KILL = Number(process.env.TX_KILL ?? 15000);
const IP = loopbackIp();

const { initHome } = await dist('ibma/init.js');
const { ConfigSpaceWriter } = await dist('lib/shm/config-segment.js');
const { homeKeyBase, KEY_SLOT } = await dist('lib/shm/keys.js');
const { defaultConf } = await dist('ibas/init.js');
const { Home } = await dist('lib/home.js');
const { Scoreboard } = await dist('ibas/scoreboard.js');
const { destroySegment } = await dist('lib/shm/sysv.js');
const { FrameReader, limitsOf } = await dist('lib/protocol/frame.js');
const { decodePacket, encodePackets } = await dist('lib/protocol/codec.js');
const { RC } = await dist('lib/protocol/result-codes.js');

const limits = limitsOf({ maxFrame: 1 << 20, maxFile: 1 << 19, maxFiles: 4 });

const freePortHere = () => freePort(IP);



// ------------------------------------------------------------ a minimal protocol client

class Conn {
  static open(port) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: IP, port });
      s.setNoDelay(true);
      const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timeout')); }, 10_000);
      s.once('connect', () => { clearTimeout(timer); resolve(new Conn(s)); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  constructor(s) {
    this.s = s;
    this.reader = new FrameReader(limits.maxFrame);
    this.queue = [];
    this.waiter = undefined;
    this.closed = false;
    s.on('data', (c) => {
      for (const f of this.reader.push(c)) this.queue.push(decodePacket(f, limits));
      this.waiter?.();
    });
    s.on('close', () => { this.closed = true; this.waiter?.(); });
    s.on('error', () => { this.closed = true; this.waiter?.(); });
  }

  async next() {
    const end = Date.now() + 20_000;
    for (;;) {
      const p = this.queue.shift();
      if (p) return p;
      if (this.closed) throw new Error('connection closed without an answer');
      if (Date.now() > end) throw new Error('no answer within 20 s');
      await new Promise((r) => { this.waiter = r; setTimeout(r, 1000); });
      this.waiter = undefined;
    }
  }

  async call(app, req) {
    this.s.write(encodePackets([
      { type: 'PRE_REQUEST', flags: 0, fileCount: 0, timeoutMs: 0, clientNode: 'bench', app, journal: '' },
      { type: 'REQUEST', body: Buffer.from(req) },
    ]));
    const pre = await this.next();
    if (pre.type === 'ERROR') throw Object.assign(new Error(`error ${pre.rc} ${pre.message}`), { rc: pre.rc });
    const r = await this.next();
    if (r.type === 'ERROR') throw Object.assign(new Error(`error ${r.rc} ${r.message}`), { rc: r.rc });
    return r;
  }

  close() {
    this.s.destroy();
  }
}

/**
 * Run `total` transactions over LOOPS long loops + 1 short loop (more while `until()` says the
 * event is not over yet, at most 10 × total); `onProgress(done)` per answer.
 */
async function load(port, total, onProgress, until = () => true) {
  const st = { attempted: 0, failed: 0, retried: 0, reasons: new Map(), lat: [] };
  let issued = 0;
  const one = async (long) => {
    let c;
    while (issued < total || (!until() && issued < 10 * total)) {
      issued++;
      const req = `r${issued}`;
      const t0 = process.hrtime.bigint();
      try {
        if (!c || c.closed) { c?.close(); c = await Conn.open(port); }
        st.attempted++;
        const r = await c.call('ibp_test_ver', req);
        const body = r.body.toString();
        if (r.rc !== RC.OK || (body !== `v1:${req}` && body !== `v2:${req}`)) throw new Error(`rc ${r.rc} ${r.message}`);
        st.lat.push({ at: Date.now(), us: Number((process.hrtime.bigint() - t0) / 1000n) });
        if (!long) { c.close(); c = undefined; }
      } catch (e) {
        c?.close();
        c = undefined;
        if (e.rc === RC.POOL_STOPPING) { st.retried++; st.attempted--; issued--; continue; }
        st.failed++;
        const k = String(e.message).slice(0, 60);
        st.reasons.set(k, (st.reasons.get(k) ?? 0) + 1);
      }
      onProgress?.(st.lat.length + st.failed);
    }
    c?.close();
  };
  await Promise.all([...Array.from({ length: LOOPS }, () => one(true)), one(false)]);
  return st;
}

function p99(lat) {
  if (lat.length === 0) return 0;
  const v = lat.map((x) => x.us).sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor(v.length * 0.99))];
}

// ------------------------------------------------------------ the server

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-bench-res-'));
const home = path.join(tmp, 'home');
fs.mkdirSync(home, { recursive: true });
const h = new Home(home);
const port = await freePortHere();
const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;
const sbKey = homeKeyBase(home) + KEY_SLOT.SCOREBOARD;
initHome(h, h.etc('ibma.conf'), { node: 'BENCH', ibmsIp: IP, ibmsPort: 1, credential: 'b'.repeat(32), indexKey });
const bin = h.so('ibp_test_ver.so');
fs.copyFileSync(path.join(ROOT, 'build/apps/ibp_test_ver_v1.so'), bin);
const writer = new ConfigSpaceWriter(indexKey);
writer.publish({
  epoch: 'bench', version: 1, this_node: 'BENCH',
  nodes: [{ node: 'BENCH', invalid: 0, hosts: [{ ip: IP, port }], kvs: {} }],
  apps: [{ app: 'ibp_test_ver', desc: 'ver', bin: 'ibp_test_ver.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'BENCH', sha256: '', size: 0 }],
}, { ibms: { ip: IP, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 1 << 20 });
const conf = defaultConf({ ip: IP, port, mode: 'STATIC_WORKERPOOL', maxCount: WORKERS, maxProcessCount: 0 }, h.etc('ibas.conf'));
conf.monitor.heartbeat_interval = 3600;
conf.monitor.max_restarts = 1000;
fs.writeFileSync(h.etc('ibas.conf'), JSON.stringify(conf, null, 2));
const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/ibas'), '-f', h.etc('ibas.conf'), '-a', 'start'], { encoding: 'utf8', env: { ...process.env, IBP_HOME: home }, timeout: 120_000 });
if (r.status !== 0) throw new Error(`ibas -a start failed: ${r.stderr}`);
const managerPid = () => Number(fs.readFileSync(h.run('ibas.pid'), 'utf8'));
// one attachment for the whole run (the scoreboard outlives a USR2: both generations share it);
// attaching and detaching per poll would map the segment again and again in this process
let sbAttached;
const workers = () => {
  sbAttached ??= Scoreboard.attach(sbKey);
  if (!sbAttached) return [];
  return sbAttached.all().filter((s) => s.state !== 'DEAD' && s.pid > 0);
};
await waitFor('workers', () => workers().length === WORKERS && workers().every((w) => w.state !== 'STARTING'));

const results = [];
const LOAD_START = os.loadavg().map((x) => x.toFixed(1)).join(' ');
try {
  // warm-up
  await load(port, 500);

  log('baseline …');
  const base = await load(port, TX);
  const baseP99 = p99(base.lat);
  results.push({ name: 'baseline (nothing happens)', st: base, events: '-', windowP99: baseP99 });

  log('hot update …');
  let ev;
  const upd = await load(port, TX, (done) => {
    if (!ev && done >= TX / 4) {
      ev = { at: Date.now() };
      fs.copyFileSync(path.join(ROOT, 'build/apps/ibp_test_ver_v2.so'), `${bin}.tmp`);
      fs.renameSync(`${bin}.tmp`, bin);
    }
  }, () => ev !== undefined && Date.now() > ev.at + 1000);
  results.push({ name: 'hot update (v2 renamed over v1)', st: upd, events: '1 rename', windowP99: p99(upd.lat.filter((x) => x.at >= ev.at && x.at <= ev.at + 1000)) });

  log('USR2 upgrade …');
  let up;
  const oldPid = managerPid();
  const upg = await load(port, TX, (done) => {
    if (!up && done >= TX / 4) {
      up = { at: Date.now() };
      process.kill(oldPid, 'SIGUSR2');
    }
  }, () => up !== undefined && !alive(oldPid));
  await waitFor('the old manager gone', () => !alive(oldPid), 60_000);
  const newPid = managerPid();
  results.push({ name: `USR2 upgrade (manager ${oldPid} → ${newPid})`, st: upg, events: '1 SIGUSR2', windowP99: p99(upg.lat.filter((x) => x.at >= up.at && x.at <= up.at + 3000)) });
  await waitFor('gen 2 workers', () => workers().length === WORKERS && workers().every((w) => w.state !== 'STARTING'));

  log('kill -9 every second …');
  const kills = [];
  const killer = setInterval(() => {
    const ws = workers().filter((w) => w.state !== 'STARTING');
    if (ws.length === 0) return;
    const w = ws[Math.floor(Math.random() * ws.length)];
    let kill;
    try { process.kill(w.pid, 'SIGKILL'); kill = { at: Date.now(), pid: w.pid, state: w.state }; kills.push(kill); } catch { return; /* gone */ }
    // time until the pool is back to size: the killed pid gone and WORKERS ready workers again
    const refilled = () => { const now = workers(); return now.length === WORKERS && now.every((x) => x.pid !== kill.pid && x.state !== 'STARTING'); };
    const poll = () => { if (refilled()) kill.refillMs = Date.now() - kill.at; else if (Date.now() - kill.at <= 5000) setTimeout(poll, 5); };
    setTimeout(poll, 5);
  }, 1000);
  const kil = await load(port, TX_KILL);
  clearInterval(killer);
  // let the refill pollers of the last kills finish (each gives up 5 s after its kill)
  await waitFor('refill measurements', () => kills.every((k) => k.refillMs !== undefined || Date.now() - k.at > 5000), 10_000);
  const inWindow = kil.lat.filter((x) => kills.some((k) => x.at >= k.at && x.at <= k.at + 1000));
  results.push({ name: 'kill -9 of a random worker every second', st: kil, events: `${kills.length} kills (${kills.filter((k) => k.state === 'WORKING' || k.state === 'KEEPALIVE').length} busy)`, windowP99: p99(inWindow), kills });
} finally {
  sbAttached?.detach();
  const pid = managerPid();
  if (alive(pid)) {
    process.kill(pid, 'SIGTERM');
    await waitFor('ibas stopped', () => !alive(pid), 40_000).catch(() => process.kill(pid, 'SIGKILL'));
  }
  writer.removeAll();
  destroySegment(sbKey);
}

// ------------------------------------------------------------ report

const baseP99 = results[0].windowP99;
const commit = gitCommit();
const lines = [];
lines.push('# bench:resilience');
lines.push('');
lines.push('`npm run bench:resilience` (test/bench/resilience.bench.mjs): a real ibas static pool under a client load of a fixed count of transactions per phase (TX; the update and upgrade phases go on until their event is over: 1 s after the rename, the old manager gone) (long-connection loops plus one short-connection loop, binary protocol, app `ibp_test_ver`), while a hot app update, a USR2 upgrade and kill -9 of a random worker every second happen in turn. "reconnects" are POOL_STOPPING answers (a leaving worker closing a long connection between transactions: nothing ran, the client reconnects) — not failures. p99 of the phase covers every transaction of it; the event window is 1 s after the rename, 3 s after the SIGUSR2, 1 s after each kill.');
lines.push('');
lines.push(`- parameters: WORKERS=${WORKERS} LOOPS=${LOOPS} (+1 short) TX=${TX} TX_KILL=${TX_KILL}`);
lines.push(`- git commit ${commit}, ${new Date().toISOString()}`);
lines.push(`- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${os.type()} ${os.release()}, Node ${process.version}; load average at the start ${LOAD_START}, at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (shared machine: compare rows of one run only)`);
lines.push('');
lines.push('| phase | events | attempted | failed | reconnects | p99 phase (µs) | p99 in event window (µs) | window p99 / baseline p99 |');
lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
for (const x of results) {
  lines.push(`| ${x.name} | ${x.events} | ${x.st.attempted} | ${x.st.failed} | ${x.st.retried} | ${p99(x.st.lat)} | ${x.windowP99} | ${baseP99 ? (x.windowP99 / baseP99).toFixed(2) : '-'} |`);
}
lines.push('');
for (const x of results) {
  if (x.st.reasons.size) lines.push(`- ${x.name}: failures ${[...x.st.reasons].map(([k, v]) => `${v} × "${k}"`).join(', ')}`);
}
const kill = results.find((x) => x.kills);
if (kill) {
  lines.push(`- kill phase: ${kill.st.failed} failed transactions for ${kill.kills.length} kills: only transactions in flight on a killed worker can fail (at most one per kill with one connection per worker).`);
  const refills = kill.kills.map((k) => k.refillMs).filter((x) => x !== undefined).sort((a, b) => a - b);
  if (refills.length > 0) lines.push(`- pool back to size after a kill (killed pid gone, ${WORKERS} workers ready again), ms: median ${refills[Math.floor(refills.length / 2)]}, max ${refills[refills.length - 1]} (${refills.length} of ${kill.kills.length} kills measured; one within 5 s each)`);
}
const upd = results[1];
const upg = results[2];
const verdict = upd.st.failed === 0 && upg.st.failed === 0 && (!kill || kill.st.failed <= kill.kills.length);
lines.push(`- verdict: ${verdict ? 'PASS' : 'FAIL'} (0 failures for the update and the upgrade; kill failures ≤ kills)`);
fs.mkdirSync(path.join(ROOT, 'docs/bench'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'docs/bench/resilience.md'), `${lines.join('\n')}\n`);
log(lines.join('\n'));
log('written docs/bench/resilience.md');
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(verdict ? 0 : 1);
