// bench:cluster — config propagation on a real multi-host cluster (hosts in network namespaces,
// scripts/netns-cluster.sh): the time from `distribute_config` answering to the change being
// visible in the config space (shm) of every agent, for several agent counts (AGENTS, default
// "3 10 30", spread over HOSTS agent hosts, default 3), ROUNDS rounds each (default 20).
//
// Every agent is a client node of one project whose server node SRV gets a kv change per round
// (a change of SRV touches every related node), so one distribute_config releases every agent's
// blocking watch. The driver runs inside the registry's host (h1); it reads each agent's config
// space directly (SysV shm is not namespaced by network namespaces).
//
// Writes docs/bench/cluster.md. Needs root and iproute2 (says so and exits 3 otherwise).
//   AGENTS="3 10 30" ROUNDS=20 HOSTS=3 npm run bench:cluster
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, dist, gitCommit, loadAverage, log, machine, waitFor } from './harness.mjs';

const SCRIPT = path.join(ROOT, 'scripts', 'netns-cluster.sh');
const AGENTS = (process.env.AGENTS ?? '3 10 30').split(/\s+/).filter(Boolean).map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 20);
const HOSTS = Number(process.env.HOSTS ?? 3);
const FAST_AGENT = { watch_wait: 30, reconnect_min: 0.05, reconnect_max: 0.4, heartbeat_interval: 1, gc_interval: 0.5 };

if (process.getuid?.() !== 0 || spawnSync('ip', ['-V']).status !== 0) {
  log('bench:cluster needs root and iproute2 (network namespaces): skipped');
  process.exit(3);
}

const name = `b${Math.random().toString(36).slice(2, 8)}`;
const root = fs.mkdtempSync(path.join(os.tmpdir(), `ibp-bench-cluster-`));
const homes = [];
const run = (ns, home, tool, args) => {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, path.join(ROOT, 'bin', tool), ...args], { env: { ...process.env, IBP_HOME: home }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
};
const patch = (file, p) => {
  const { parseJsonText } = loaded.load;
  const conf = parseJsonText(fs.readFileSync(file, 'utf8'), file);
  const merge = (a, b) => { for (const [k, v] of Object.entries(b)) { if (v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object') merge(a[k], v); else a[k] = v; } return a; };
  fs.writeFileSync(file, JSON.stringify(merge(conf, p), null, 2), { mode: 0o600 });
};
const loaded = { load: await dist('lib/config/load.js'), space: await dist('lib/shm/config-space.js'), procs: null };

const shm = { keys: await dist('lib/shm/keys.js'), sysv: await dist('lib/shm/sysv.js') };

/** Stop every daemon the way an operator does (agents cleanly: their config spaces go too), then sweep. */
async function cleanup() {
  for (const h of homes) {
    const tool = h === path.join(root, 'reg') ? ['ibms', '-a', 'stop'] : ['ibma', '-a', 'stop_cleanly'];
    spawnSync(process.execPath, [path.join(ROOT, 'bin', tool[0]), ...tool.slice(1)], { env: { ...process.env, IBP_HOME: h }, stdio: 'ignore', timeout: 30_000 });
  }
  // anything a crashed agent left in a home's key block
  const segs = await shm.sysv.listSegments();
  for (const h of homes) {
    const base = shm.keys.homeKeyBase(h);
    for (const seg of segs) if (seg.key >= base && seg.key <= base + 255) shm.sysv.destroySegment(seg.key);
  }
  spawnSync('bash', [SCRIPT, 'down', name], { stdio: 'ignore' });
  fs.rmSync(root, { recursive: true, force: true });
}
process.on('SIGINT', () => { void cleanup().finally(() => process.exit(130)); });

const results = [];
try {
  const up = execFileSync('bash', [SCRIPT, 'up', name, String(HOSTS + 1)], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(' '));
  const hosts = up.map(([h, ip]) => ({ h, ip, ns: `ibp-${name}-${h}` }));
  const [reg, ...agentHosts] = hosts;
  const regHome = path.join(root, 'reg');
  homes.push(regHome);
  fs.mkdirSync(regHome);
  run(reg.ns, regHome, 'ibms', ['-a', 'init', '--ip', reg.ip, '--port', '16001']);
  patch(path.join(regHome, 'etc', 'ibms.conf'), { session: { max_wait_seconds: 60 } });
  run(reg.ns, regHome, 'ibms', ['-a', 'start']);
  const ibms = (...args) => run(reg.ns, regHome, 'ibms', args);
  ibms('-a', 'add_node', '--node', 'SRV');
  let started = 0;
  const agents = [];
  for (const n of AGENTS) {
    // add agents up to n (spread over the agent hosts)
    const nodes = [];
    for (let i = started; i < n; i++) nodes.push(`C${i}`);
    for (const node of nodes) ibms('-a', 'add_node', '--node', node);
    const all = [...agents.map((a) => a.node), ...nodes];
    try { ibms('-a', 'remove_project', '--project', 'P'); } catch { /* first time */ }
    ibms('-a', 'add_project', '--project', 'P', '--server-nodes', 'SRV', '--client-nodes', all.join(' '));
    ibms('-a', 'distribute_config');
    for (const [k, node] of nodes.entries()) {
      const host = agentHosts[(started + k) % agentHosts.length];
      const home = path.join(root, node.toLowerCase());
      homes.push(home);
      fs.mkdirSync(home);
      const cred = ibms('-s', 'node_credential', '--node', node).trim();
      run(host.ns, home, 'ibma', ['-a', 'init', '--node', node, '--ibms-ip', reg.ip, '--ibms-port', '16001', '--credential', cred]);
      patch(path.join(home, 'etc', 'ibma.conf'), { agent: FAST_AGENT });
      run(host.ns, home, 'ibma', ['-a', 'start']);
      const conf = JSON.parse(fs.readFileSync(path.join(home, 'etc', 'ibma.conf'), 'utf8'));
      agents.push({ node, home, indexKey: conf.shm.index_key });
    }
    started = n;
    // rounds: change SRV's kv, distribute through the REST API from inside h1, watch every agent
    const credential = fs.readFileSync(path.join(regHome, 'keys', 'admin.credential'), 'utf8').trim();
    const driver = spawn('ip', ['netns', 'exec', reg.ns, process.execPath, path.join(ROOT, 'test', 'bench', 'cluster-driver.mjs')], {
      env: { ...process.env, IBMS_URL: `http://${reg.ip}:16001`, IBMS_TOKEN: credential, ROUNDS: String(ROUNDS), KEYS: agents.map((a) => a.indexKey).join(','), TAG: `n${n}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    driver.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    const code = await new Promise((r) => driver.on('close', r));
    if (code !== 0) throw new Error(`driver exited ${code}: ${out}`);
    const times = JSON.parse(out).sort((a, b) => a - b);
    const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
    results.push({ agents: n, rounds: times.length, median: q(0.5), p90: q(0.9), max: times[times.length - 1] });
    log(`agents ${n}: median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms over ${times.length} rounds`);
  }
} finally {
  await cleanup();
}

const lines = [
  '# bench:cluster — config propagation on a namespace cluster',
  '',
  `Run: ${new Date().toISOString()} · commit ${gitCommit()} · ${machine()} · load ${loadAverage()}`,
  `Parameters: AGENTS="${AGENTS.join(' ')}" ROUNDS=${ROUNDS} HOSTS=${HOSTS} (agents spread over ${HOSTS} hosts, registry on its own host)`,
  '',
  'Time from `POST /v1/config/distribute` answering to the new kv being visible in the config space',
  'of every agent (the slowest agent of the round).',
  '',
  '| agents | rounds | median ms | p90 ms | max ms |',
  '|---:|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.agents} | ${r.rounds} | ${r.median.toFixed(1)} | ${r.p90.toFixed(1)} | ${r.max.toFixed(1)} |`),
  '',
  'Goal (issue 13): median < 100 ms for 3 agents.',
  '',
];
fs.mkdirSync(path.join(ROOT, 'docs', 'bench'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'docs', 'bench', 'cluster.md'), lines.join('\n'));
log(`written docs/bench/cluster.md`);
