#!/usr/bin/env node
// node test/bench/cpuprofile-top.mjs FILE.cpuprofile… — the functions with the most self time and
// inclusive time of V8 .cpuprofile files (e.g. from IBAS_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"
// of npm run bench:ibas), as text. Env N (40): rows per list. Note: a synchronous koffi call that
// blocks (poll, semtimedop) is charged to its JS caller as self time: wall time, not CPU.
import fs from 'node:fs';

const N = Number(process.env.N ?? 40);
const label = (cf) => `${cf.functionName || '(anonymous)'} ${cf.url.replace(/.*\/(dist|node_modules)\//, '$1/')}:${cf.lineNumber + 1}`;
for (const file of process.argv.slice(2)) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const perNode = new Map();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    perNode.set(id, (perNode.get(id) ?? 0) + dt);
    total += dt;
  });
  const self = new Map();
  const incl = new Map();
  for (const [id, t] of perNode) {
    const k = label(byId.get(id).callFrame);
    self.set(k, (self.get(k) ?? 0) + t);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = label(byId.get(cur).callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + t);
    }
  }
  const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, N).map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}% ${(t / 1e3).toFixed(0).padStart(7)} ms  ${k}`).join('\n');
  console.log(`== ${file}: ${(total / 1e3).toFixed(0)} ms sampled`);
  console.log('-- self time');
  console.log(top(self));
  console.log('-- inclusive time');
  console.log(top(incl));
}
