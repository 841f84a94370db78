/**
 * A client load for the resilience tests: `n` loops calling ibp_test_echo (each answer checked)
 * on long or short connections until stopped. A long connection the server closed between
 * transactions, or a POOL_STOPPING answer ("nothing ran: reconnect", a leaving worker's word) is
 * retried on a new connection and counted as `retried`, never as a failure; anything else that is
 * not the right echo (a timeout, a cut connection after the request left, a wrong body) is a
 * failure, kept with its reason.
 */
import { RC } from '../../../lib/protocol/result-codes.js';
import { TestClient } from './client.js';

export interface LoopStats { ok: number; failed: number; retried: number; reasons: string[]; answers: Map<string, number> }

export interface ClientLoop {
  stats: LoopStats;
  /** Stop and wait for the loops to end. */
  stop(): Promise<LoopStats>;
}

export function startLoop(ip: string, port: number, o: { loops?: number; long?: boolean; app?: string; expect?: (req: string, body: string) => boolean; maxTx?: number } = {}): ClientLoop {
  const stats: LoopStats = { ok: 0, failed: 0, retried: 0, reasons: [], answers: new Map() };
  let stopped = false;
  const app = o.app ?? 'ibp_test_echo';
  const expect = o.expect ?? ((req, body) => req === body);
  const maxTx = o.maxTx ?? 100_000;
  const one = async (id: number): Promise<void> => {
    let c: TestClient | undefined;
    for (let i = 0; !stopped && i < maxTx; i++) {
      const req = `loop${id}-${i}`;
      try {
        if (!c || c.closed) {
          c?.close();
          c = await TestClient.connect(ip, port, 10_000);
        }
        const r = await c.call(app, req, { timeoutMs: 20_000 });
        const body = r.body.toString();
        if (r.rc === RC.OK && expect(req, body)) {
          stats.ok++;
          const tag = body.split(':')[0]!;
          stats.answers.set(tag, (stats.answers.get(tag) ?? 0) + 1);
        } else {
          stats.failed++;
          stats.reasons.push(`rc ${r.rc} ${r.message} body ${body.slice(0, 40)}`);
        }
        if (!o.long) {
          c.close();
          c = undefined;
        }
      } catch (e) {
        const rc = (e as { rc?: number }).rc;
        c?.close();
        c = undefined;
        if (rc === RC.POOL_STOPPING) {
          stats.retried++;
          i--;
          continue;
        }
        stats.failed++;
        stats.reasons.push((e as Error).message);
      }
    }
    c?.close();
  };
  const all = Promise.all(Array.from({ length: o.loops ?? 2 }, (_, k) => one(k)));
  return {
    stats,
    async stop() {
      stopped = true;
      await all;
      return stats;
    },
  };
}
