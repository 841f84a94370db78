// ibms benchmark: a registry of 10,000 nodes x 3 hosts, 100,000 apps and 1,000 projects.
//
// Measures, in one run:
//   - load time from the JSON files (parse + schema validation + reference checks + indexes)
//     against a bare JSON.parse of the same files (the baseline), and from the .bin images; ratio;
//   - the real daemon's start (`ibms -a start`, wall time) and its own reported load time, from JSON
//     and from .bin;
//   - round-trip latency of a read command (`ibms -s nodes --node N`) against a bare `node -e 0`
//     spawn (the floor of any Node CLI), and the same read as a raw HTTP request from this process.
// Writes docs/bench/ibms.md. Bounded: fixed counts, each phase a few seconds.
//
// Run: npm run bench:ibms   (BENCH_SCALE=0.1 for a quick smaller run)
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Home } from '../../dist/lib/home.js';
import { initHome } from '../../dist/ibms/init.js';
import { loadData, snapshotImages, writeImages } from '../../dist/ibms/persist.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const IBMS = path.join(ROOT, 'bin', 'ibms');
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const N_NODES = Math.round(10_000 * SCALE);
const HOSTS_PER_NODE = 3;
const N_APPS = Math.round(100_000 * SCALE);
const N_PROJECTS = Math.round(1_000 * SCALE);
const LOAD_RUNS = 3;
const CLI_RUNS = 15;
const HTTP_RUNS = 300;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const ms = (x) => `${x.toFixed(1)} ms`;

function generate() {
  const nodes = [];
  for (let i = 0; i < N_NODES; i++) {
    const hosts = [];
    for (let h = 0; h < HOSTS_PER_NODE; h++) hosts.push({ ip: `10.${(i >> 8) & 255}.${i & 255}.${h + 1}`, port: 18000 + h });
    nodes.push({ node: `NODE${String(i).padStart(5, '0')}`, invalid: 0, hosts, kvs: i % 10 === 0 ? { hsm_ip: `10.9.${i & 255}.1`, queue: `Q${i}` } : {} });
  }
  const apps = [];
  for (let i = 0; i < N_APPS; i++) {
    apps.push({ app: `APP${String(i).padStart(6, '0')}`, desc: `transaction ${i} of the bench cluster`, bin: `app${i % 5000}.so`, timeout: 30 + (i % 60), timeout2: 0, invalid: 0, server_node: '' });
  }
  const projects = [];
  const nodesPer = Math.max(1, Math.floor(N_NODES / N_PROJECTS));
  const appsPer = Math.max(1, Math.floor(N_APPS / N_PROJECTS));
  for (let p = 0; p < N_PROJECTS; p++) {
    const members = nodes.slice(p * nodesPer, (p + 1) * nodesPer).map((n) => n.node);
    projects.push({
      project: `PROJ${String(p).padStart(4, '0')}`,
      server_nodes: members.slice(0, 3),
      client_nodes: members.slice(3),
      apps: apps.slice(p * appsPer, (p + 1) * appsPer).map((a) => a.app),
    });
  }
  return { nodes, apps, projects };
}

function ibms(home, ...args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [IBMS, ...args], { env: { ...process.env, IBP_HOME: home.root }, encoding: 'utf8', timeout: 300_000 });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`ibms ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { out: r.stdout, wall };
}

function httpGet(ip, port, urlPath, credential) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, path: urlPath, headers: { authorization: `Bearer ${credential}`, 'accept-encoding': 'lz4' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibms-bench-'));
  const home = new Home(tmp);
  const ip = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const port = 20000 + Math.floor(Math.random() * 20000);
  initHome(home, { ip, port });
  const files = { nodes: home.etc('ibp_nodes.conf'), apps: home.etc('ibp_apps.conf'), projects: home.etc('ibp_projects.conf') };
  const results = {};
  let started = false;
  try {
    console.log(`generating ${N_NODES} nodes x ${HOSTS_PER_NODE} hosts, ${N_APPS} apps, ${N_PROJECTS} projects ...`);
    const data = generate();
    for (const part of ['nodes', 'apps', 'projects']) fs.writeFileSync(files[part], `${JSON.stringify({ [part]: data[part] }, null, 2)}\n`);
    const jsonBytes = Object.values(files).reduce((s, f) => s + fs.statSync(f).size, 0);

    // 1. in-process load: baseline JSON.parse, full JSON load, .bin load
    const baseline = [];
    const baselineCpu = [];
    for (let r = 0; r < LOAD_RUNS; r++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (const f of Object.values(files)) JSON.parse(fs.readFileSync(f, 'utf8'));
      const c = process.cpuUsage(c0);
      baseline.push(performance.now() - t0);
      baselineCpu.push((c.user + c.system) / 1000);
    }
    const fromJson = [];
    const fromJsonCpu = [];
    let loaded;
    for (let r = 0; r < LOAD_RUNS; r++) {
      loaded = loadData(files, { useImages: false });
      fromJson.push(loaded.ms);
      fromJsonCpu.push(loaded.cpuMs);
    }
    if (loaded.store.nodes.size !== N_NODES || loaded.store.apps.size !== N_APPS) throw new Error('load lost data');
    const tb = performance.now();
    await writeImages(files, snapshotImages(loaded.store.toData()));
    const buildMs = performance.now() - tb;
    const binBytes = Object.values(files).reduce((s, f) => s + fs.statSync(`${f}.bin`).size, 0);
    const fromBin = [];
    const fromBinCpu = [];
    for (let r = 0; r < LOAD_RUNS; r++) {
      const l = loadData(files);
      if (l.sources.apps !== 'bin' || l.store.apps.size !== N_APPS) throw new Error('bin load failed');
      if (JSON.stringify(l.store.toData()) !== JSON.stringify(loaded.store.toData())) throw new Error('the image does not hold the same data');
      fromBin.push(l.ms);
      fromBinCpu.push(l.cpuMs);
    }
    results.load = {
      baseline: median(baseline), json: median(fromJson), bin: median(fromBin),
      baselineCpu: median(baselineCpu), jsonCpu: median(fromJsonCpu), binCpu: median(fromBinCpu),
      buildMs, jsonBytes, binBytes,
    };
    console.log(`load: JSON.parse baseline ${ms(results.load.baseline)}, from JSON ${ms(results.load.json)}, from .bin ${ms(results.load.bin)}`);

    // 2. the real daemon: start from .bin, then from JSON (images removed)
    const startBin = ibms(home, '-a', 'start');
    started = true;
    const stBin = JSON.parse(ibms(home, '-s', 'status', '--json').out).worker;
    ibms(home, '-a', 'stop');
    started = false;
    for (const f of Object.values(files)) fs.rmSync(`${f}.bin`);
    const startJson = ibms(home, '-a', 'start');
    started = true;
    const stJson = JSON.parse(ibms(home, '-s', 'status', '--json').out).worker;
    results.daemon = {
      startBinWall: startBin.wall, startJsonWall: startJson.wall, loadBin: stBin.load_ms, loadJson: stJson.load_ms,
      loadBinCpu: stBin.load_cpu_ms, loadJsonCpu: stJson.load_cpu_ms, fromBin: stBin.loaded_from, fromJson: stJson.loaded_from,
    };
    console.log(`daemon start: from .bin ${ms(startBin.wall)} (load ${stBin.load_ms} ms), from JSON ${ms(startJson.wall)} (load ${stJson.load_ms} ms)`);

    // 3. read command round trip: CLI vs bare node spawn; raw HTTP from this process
    const bare = [];
    for (let r = 0; r < CLI_RUNS; r++) {
      const t0 = performance.now();
      execFileSync(process.execPath, ['-e', '0']);
      bare.push(performance.now() - t0);
    }
    const cli = [];
    for (let r = 0; r < CLI_RUNS; r++) {
      const node = `NODE${String(Math.floor(Math.random() * N_NODES)).padStart(5, '0')}`;
      const x = ibms(home, '-s', 'nodes', '--node', node, '--json');
      if (!x.out.includes(node)) throw new Error('read command answered the wrong node');
      cli.push(x.wall);
    }
    const admin = fs.readFileSync(home.keys('admin.credential'), 'utf8').trim();
    const rtt = [];
    for (let r = 0; r < HTTP_RUNS; r++) {
      const node = `NODE${String(Math.floor(Math.random() * N_NODES)).padStart(5, '0')}`;
      const t0 = performance.now();
      const status = await httpGet(ip, port, `/v1/nodes?node=${node}`, admin);
      rtt.push(performance.now() - t0);
      if (status !== 200) throw new Error(`HTTP ${status}`);
    }
    const agentCred = ibms(home, '-s', 'node_credential', '--node', 'NODE00000').out.trim();
    const bundle = [];
    for (let r = 0; r < 50; r++) {
      const t0 = performance.now();
      await httpGet(ip, port, '/v1/agent/config?node=NODE00000', agentCred);
      bundle.push(performance.now() - t0);
    }
    results.rtt = { bare: median(bare), cliP50: median(cli), cliP90: pct(cli, 0.9), httpP50: median(rtt), httpP99: pct(rtt, 0.99), bundleP50: median(bundle) };
    console.log(`read round trip: CLI p50 ${ms(results.rtt.cliP50)} (bare node spawn ${ms(results.rtt.bare)}), HTTP p50 ${ms(results.rtt.httpP50)}`);
  } finally {
    if (started) ibms(home, '-a', 'stop');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  writeReport(results);
}

function writeReport(r) {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch { /* not a checkout */ }
  const cpus = os.cpus();
  const text = `# ibms benchmark

Generated by \`npm run bench:ibms\` (test/bench/ibms.bench.mjs) on ${new Date().toISOString()}.

- commit: \`${commit}\`
- machine: ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}
- config: ${N_NODES} nodes × ${HOSTS_PER_NODE} hosts, ${N_APPS} apps, ${N_PROJECTS} projects (${(r.load.jsonBytes / 2 ** 20).toFixed(1)} MiB of JSON, ${(r.load.binBytes / 2 ** 20).toFixed(1)} MiB of .bin images)

## Start-up load time (median of ${LOAD_RUNS}, in-process)

Wall time and CPU time (user + system of the process): on a shared machine the wall time
includes waiting for a core, the CPU time does not.

| source | wall | CPU | CPU vs bare JSON.parse |
|---|---|---|---|
| bare \`JSON.parse\` of the three files (baseline) | ${ms(r.load.baseline)} | ${ms(r.load.baselineCpu)} | 1.00 |
| JSON files (comments stripped, secure parse, schema validation, reference checks, indexes) | ${ms(r.load.json)} | ${ms(r.load.jsonCpu)} | ${(r.load.jsonCpu / r.load.baselineCpu).toFixed(2)} |
| \`.bin\` images (checksum, columnar v8 decode, indexes; no validation needed) | ${ms(r.load.bin)} | ${ms(r.load.binCpu)} | ${(r.load.binCpu / r.load.baselineCpu).toFixed(2)} |

**JSON / .bin load ratio: ${(r.load.json / r.load.bin).toFixed(2)}× wall, ${(r.load.jsonCpu / r.load.binCpu).toFixed(2)}× CPU** (building the images took ${ms(r.load.buildMs)}).

## The real daemon

| start | \`ibms -a start\` wall time | load reported by the worker (wall / CPU) |
|---|---|---|
| from \`.bin\` (first start) | ${ms(r.daemon.startBinWall)} | ${r.daemon.loadBin} ms / ${r.daemon.loadBinCpu} ms (${Object.values(r.daemon.fromBin).join('/')}) |
| from JSON | ${ms(r.daemon.startJsonWall)} | ${r.daemon.loadJson} ms / ${r.daemon.loadJsonCpu} ms (${Object.values(r.daemon.fromJson).join('/')}) |

Daemon JSON / .bin load ratio: ${(r.daemon.loadJson / r.daemon.loadBin).toFixed(2)}× wall, ${(r.daemon.loadJsonCpu / r.daemon.loadBinCpu).toFixed(2)}× CPU.
The start's wall time also covers forking the worker, loading its modules, reading (and on the first
start creating) the ${N_NODES} node credential files, and listening; the first start is the .bin one.

## Read command round trip

| what | p50 | other |
|---|---|---|
| bare \`node -e 0\` spawn (floor of any Node CLI) | ${ms(r.rtt.bare)} | |
| \`ibms -s nodes --node N --json\` (spawn + load conf + HTTP + print) | ${ms(r.rtt.cliP50)} | p90 ${ms(r.rtt.cliP90)}; ${(r.rtt.cliP50 / r.rtt.bare).toFixed(2)}× the bare spawn |
| the same read as one HTTP request from a running process | ${ms(r.rtt.httpP50)} | p99 ${ms(r.rtt.httpP99)} |
| an agent's bundle (GET /v1/agent/config, 10 nodes and 100 apps, lz4) | ${ms(r.rtt.bundleP50)} | |
`;
  fs.mkdirSync(path.join(ROOT, 'docs', 'bench'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'docs', 'bench', 'ibms.md'), text);
  console.log(text);
}

await main();
