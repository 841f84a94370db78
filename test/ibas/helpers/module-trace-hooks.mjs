// The resolve hook of ./module-trace.mjs: record each resolved module URL of this process.
import fs from 'node:fs';
import path from 'node:path';

const file = path.join(process.env.MODULE_TRACE_DIR ?? '.', `${process.pid}.txt`);

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  fs.appendFileSync(file, `${r.url}\n`);
  return r;
}
