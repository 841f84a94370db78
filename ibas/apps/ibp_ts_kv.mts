/**
 * ibp_ts_kv.mjs (app code ibp_ts_kv): a key/value reader. The request is a key (UTF-8); the
 * response is JSON {"node","app","key","value","timeout"} with the value of that key/value of
 * this node in the config space (null when not set) and the app's own timeout from its config.
 * An empty request answers every context field instead (a view of ctx for debugging).
 *
 * Result codes: 0 ok; 1 the key is not set (the JSON still says so).
 */
import type { AppContext } from '../../lib/app/api.js';

export const abiVersion = 1;

export function main(ctx: AppContext): number {
  const key = ctx.request.toString('utf8').trim();
  if (key === '') {
    ctx.write(JSON.stringify({
      node: ctx.thisNode, app: ctx.app, clientNode: ctx.clientNode, clientIp: ctx.clientIp, journal: ctx.journal,
      workerIndex: ctx.workerIndex, timeoutMs: ctx.timeoutMs, timeout2Ms: ctx.timeout2Ms, desc: ctx.config('desc') ?? null,
    }));
    return 0;
  }
  const value = ctx.kv(key);
  ctx.log.info(`kv lookup , key[${key}] found[${value !== undefined}]`);
  ctx.write(JSON.stringify({ node: ctx.thisNode, app: ctx.app, key, value: value ?? null, timeout: ctx.config('timeout') ?? null }));
  return value === undefined ? 1 : 0;
}
