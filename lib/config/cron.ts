/**
 * Cron expressions in config files (node-cron syntax: 5 fields, or 6 with seconds first). A schema
 * built with {@link Cron} is checked by the `x-cron` ajv keyword registered in lib/config/load.ts,
 * so a bad expression is refused wherever the file is loaded (`-a check`, start) with the key and
 * the cron field at fault:
 *
 *   config file /h/etc/ibms.conf: key /schedule/save_config is not a valid cron expression ("61 * * * *"): minute: …
 */
import { createRequire } from 'node:module';
import { Type } from '@sinclair/typebox';
import type { DetailedValidation } from 'node-cron';

/** node-cron, loaded on the first expression checked: a conf without schedules never pays for it. */
let validator: ((expr: string) => DetailedValidation) | undefined;
function validateDetailed(expr: string): DetailedValidation {
  validator ??= (createRequire(import.meta.url)('node-cron') as { validateDetailed: (e: string) => DetailedValidation }).validateDetailed;
  return validator(expr);
}

export const Cron = Type.String({ minLength: 1, maxLength: 200, 'x-cron': true, description: 'a cron expression (m h dom mon dow, or s m h dom mon dow)' });

/** undefined when valid, else what is wrong, naming the cron field. */
export function cronProblem(expr: string): string | undefined {
  let v;
  try {
    v = validateDetailed(expr);
  } catch (e) {
    return (e as Error).message;
  }
  if (v.valid) return undefined;
  return v.errors.map((e) => `${e.field}${e.value !== undefined ? ` "${e.value}"` : ''}: ${e.message}`).join('; ') || 'not a cron expression';
}
