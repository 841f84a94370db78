// bench:2pc — the two-phase commit crash matrix of test/ibac/2pc-crash-matrix.test.ts with more
// rounds: kill -9 at each of the six points × IBP_2PC_BENCH_ROUNDS (default 10), recovery after
// each, the oracle over the participants' journals. Prints runs, violations (must be 0) and
// recovery times per point; writes docs/bench/2pc.md. Exit 1 on any violation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/procs.js';
import { Matrix, POINTS, type RunOutcome } from '../ibac/helpers/crash-matrix.js';

const ROUNDS = Number(process.env.IBP_2PC_BENCH_ROUNDS ?? 10);
t.setTimeout(3_600_000); // the root's default (30 s) is for tests, not for a bench
const runs: RunOutcome[] = [];
const t0 = Date.now();
await t.test('2pc crash matrix bench', { timeout: 3_600_000 }, async (t) => {
  const m = await Matrix.start(t);
  for (let round = 0; round < ROUNDS; round++) {
    for (const point of POINTS) {
      const r = await m.run(point);
      runs.push(r);
      if (r.violations.length > 0) process.stderr.write(`VIOLATION ${point} ${r.gtrid}: ${r.violations.join('; ')}\n`);
    }
    process.stderr.write(`round ${round + 1}/${ROUNDS}: ${runs.length} runs, ${runs.filter((r) => r.violations.length > 0).length} with violations\n`);
  }
  t.pass('done');
});

const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
const rows = POINTS.map((point) => {
  const mine = runs.filter((r) => r.point === point);
  const ms = mine.map((r) => r.recoveryMs);
  const decisions = [...new Set(mine.map((r) => r.expected))].join('/');
  return { point, runs: mine.length, crashed: mine.filter((r) => r.crashed).length, violations: mine.reduce((n, r) => n + r.violations.length, 0), decisions, p50: q(ms, 0.5), p95: q(ms, 0.95), max: Math.max(0, ...ms) };
});
const violations = rows.reduce((n, r) => n + r.violations, 0);
const table = ['| kill -9 at | runs | crashed | outcome (logged or presumed) | violations | recovery p50 ms | p95 ms | max ms |', '|---|---:|---:|---|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.point} | ${r.runs} | ${r.crashed} | ${r.decisions} | ${r.violations} | ${r.p50.toFixed(0)} | ${r.p95.toFixed(0)} | ${r.max.toFixed(0)} |`)].join('\n');
const text = `# Two-phase commit crash matrix (\`npm run bench:2pc\`)

${new Date().toISOString()} · ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}) · Node ${process.version} · ${ROUNDS} rounds × ${POINTS.length} points = ${runs.length} runs in ${((Date.now() - t0) / 1000).toFixed(0)} s (cluster start included)

Each run: one global transaction over two participant nodes (N1, N2: ibas + ibp_test_2pc),
coordinated by a child process; kill -9 at the point (lib/crash-point.ts); then coordinator
recovery (\`env.recover()\`, timed below: claiming the dead coordinator's log and driving every
participant to the decision); then the oracle (test/ibac/helpers/crash-matrix.ts): each
participant's fsync'ed side-effect journal must show exactly the logged decision (ROLLBACK when
none was logged), nothing left in doubt in any participant log, the coordinator log gone.
Recovery is ~0 ms where the coordinator survived (participant points: it finished the
transaction itself with retries).

**Runs: ${runs.length} · violations: ${violations}**

${table}
`;
fs.writeFileSync(path.join(ROOT, 'docs', 'bench', '2pc.md'), text);
process.stdout.write(`\n${table}\n\nruns ${runs.length} violations ${violations}\n`);
if (violations > 0) process.exitCode = 1;
