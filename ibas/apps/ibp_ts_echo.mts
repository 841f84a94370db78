/**
 * ibp_ts_echo.mjs (app code ibp_ts_echo): answers the request bytes unchanged: the TypeScript twin
 * of ibp_test_echo.so (the bench compares the two). Built by `npm run build` (tsc → dist/, then
 * scripts/build-apps.sh copies it to build/apps/ibp_ts_echo.mjs).
 */
import type { AppContext } from '../../lib/app/api.js';

export const abiVersion = 1;

export function main(ctx: AppContext): number {
  ctx.write(ctx.request);
  return 0;
}
