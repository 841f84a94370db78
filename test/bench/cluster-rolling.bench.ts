// bench:cluster (second part) — the load a client sees while `ibas_cluster.sh ALL restart_graceful`
// rolls a server node of two hosts (hosts in network namespaces; the same cluster as the multi-host
// tests, test/scripts/netns-project.ts). Short-connection calls from a client host, counted in
// 500 ms buckets: before the roll, during it, after it; failed calls (must be 0).
// Appends its table to docs/bench/cluster.md. Run by `npm run bench:cluster` after the propagation
// part; needs root and iproute2 (exits 3 otherwise).
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/procs.js';
import { ClientLoad, clusterConf, projectOrSkip } from '../scripts/netns-project.js';

const project = await projectOrSkip(t, 3);
if (!project) process.exit(3);
const { p, sshSkip } = project;
const transport = sshSkip ? 'ibcmd' : 'ssh';
if (sshSkip) {
  const { withIbcmd } = await import('../scripts/netns-project.js');
  await withIbcmd(p);
}
const load = new ClientLoad(p, 600, 10_000_000);
const samples: { at: number; calls: number }[] = [];
// the client rewrites its progress file after every call: a read may catch it empty, so the count
// is the highest seen so far
let seen = 0;
const sampler = setInterval(() => {
  seen = Math.max(seen, load.calls());
  samples.push({ at: Date.now(), calls: seen });
}, 500);
await load.more(200);
await new Promise((r) => setTimeout(r, 3000));
const rollStart = Date.now();
const r = await p.c.script(p.c.host('h1'), p.admin, 'ibas_cluster.sh', ['ALL', 'restart_graceful'], { IBP_CLUSTER_CONF: clusterConf(p, transport) });
const rollEnd = Date.now();
await new Promise((res) => setTimeout(res, 3000));
clearInterval(sampler);
const summary = await load.stop();

const rate = (from: number, to: number): number => {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  if (inside.length < 2) return 0;
  return ((inside.at(-1)!.calls - inside[0]!.calls) * 1000) / (inside.at(-1)!.at - inside[0]!.at);
};
const buckets = samples.slice(1).map((s, i) => ((s.calls - samples[i]!.calls) * 1000) / (s.at - samples[i]!.at));
const during = buckets.filter((_, i) => samples[i + 1]!.at >= rollStart && samples[i]!.at <= rollEnd);
const lines = [
  '',
  '## Load during `ibas_cluster.sh ALL restart_graceful` (test/bench/cluster-rolling.bench.ts)',
  '',
  `Run: ${new Date().toISOString()} · a server node of 2 hosts, one client host, short-connection calls through ibac (one at a time), roll over ${transport}; the roll exited ${r.code} after ${((rollEnd - rollStart) / 1000).toFixed(1)} s.`,
  '',
  '| phase | calls/s |',
  '|---|---:|',
  `| before the roll (3 s) | ${rate(rollStart - 3000, rollStart).toFixed(0)} |`,
  `| during the roll (mean) | ${rate(rollStart, rollEnd).toFixed(0)} |`,
  `| during the roll (lowest 500 ms bucket) | ${during.length ? Math.min(...during).toFixed(0) : '-'} |`,
  `| after the roll (3 s) | ${rate(rollEnd, rollEnd + 3000).toFixed(0)} |`,
  '',
  `Calls: ${summary.calls}, failed: ${summary.failed}${summary.failed ? ` (${JSON.stringify(summary.errors)})` : ''}; per host: ${JSON.stringify(summary.hosts)}.`,
  '',
];
fs.appendFileSync(path.join(ROOT, 'docs', 'bench', 'cluster.md'), lines.join('\n'));
process.stdout.write(`${lines.join('\n')}\n`);
t.equal(r.code, 0, 'the roll succeeded');
