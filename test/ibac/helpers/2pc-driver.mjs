// The coordinator of one global transaction, as a child process of the two-phase crash matrix
// (test/ibac/helpers/crash-matrix.ts): IBP_TEST_CRASH_AT (lib/crash-point.ts) may kill it at a
// point of ibac's two-phase commit. Uses the built library (dist/) for a quick start.
//
//   node 2pc-driver.mjs <ibma.conf> <node:app> <node:app> …
//
// Prints one JSON line {gtrid, decision, committed, hazard, decide: [...]} when it lives to the end.
import { createEnvironment } from '../../../dist/ibac/index.js';

const [conf, ...legs] = process.argv.slice(2);
const env = createEnvironment({ config: conf, recover: false });
try {
  const r = await env.twoPhaseCommit(legs.map((l, i) => {
    const [node, app] = l.split(':');
    return { node, app, request: `leg ${i}` };
  }));
  process.stdout.write(`${JSON.stringify({
    gtrid: r.gtrid, decision: r.decision, committed: r.committed, hazard: r.hazard,
    decide: r.decide.map((d) => ({ node: d.node, ok: d.ok, code: d.error?.code, body: d.response?.body.toString() })),
  })}\n`);
} finally {
  env.destroy();
}
