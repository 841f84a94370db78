/**
 * ibp_ts_file.mjs (app code ibp_ts_file): the TypeScript twin of ibp_test_file.so: answers the
 * request bytes AND sends every attached request file back as "<name>.echo" with the same content.
 *
 * Result codes: 0 ok; 2 a request file cannot be read; 3 a response file cannot be written.
 */
import fs from 'node:fs';
import type { AppContext } from '../../lib/app/api.js';

export const abiVersion = 1;

export function main(ctx: AppContext): number {
  ctx.write(ctx.request);
  for (const name of ctx.requestFiles) {
    let data: Buffer;
    try {
      data = fs.readFileSync(ctx.filePath(name));
    } catch {
      return 2;
    }
    const out = `${name}.echo`;
    try {
      fs.writeFileSync(ctx.filePath(out), data);
    } catch {
      return 3;
    }
    ctx.addFile(out);
  }
  return 0;
}
