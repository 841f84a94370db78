/**
 * Reading and validating JSON config files. Comments (`//`, `/* *\/`) are allowed, as IBP allows
 * them. A failure names the file, the key and what was expected:
 *
 *   config file /h/etc/ibas.conf: key /mpm/max_count must be >= 1
 */
import fs from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import stripJsonComments from 'strip-json-comments';
import sjson from 'secure-json-parse';
import type { Static, TSchema } from '@sinclair/typebox';
import { IbpError } from '../errors.js';
import { cronProblem } from './cron.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * One ajv for the whole process; defaults are filled in, unknown keys rejected by the schemas.
 * Our schemas are built by TypeBox, so ajv's meta-schema check (≈150 ms at each tool start) is off.
 */
export const ajv = addFormats(new Ajv({ allErrors: false, useDefaults: true, strict: false, verbose: true, validateSchema: false }));

/** `x-cron: true` on a string schema: a node-cron expression (lib/config/cron.ts). */
ajv.addKeyword({
  keyword: 'x-cron',
  type: 'string',
  errors: true,
  validate: function cron(this: unknown, _schema: unknown, data: string): boolean {
    const problem = cronProblem(data);
    if (problem === undefined) return true;
    (cron as unknown as { errors: Partial<ErrorObject>[] }).errors = [{ keyword: 'x-cron', message: `is not a valid cron expression (${JSON.stringify(data)}): ${problem}`, params: {} }];
    return false;
  },
});

const compiled = new WeakMap<TSchema, ValidateFunction>();

function validator(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** The allowed values of a union of literals (`anyOf` of `const`s), or undefined. */
function enumValues(schema: unknown): unknown[] | undefined {
  const branches = (schema as { anyOf?: { const?: unknown }[] } | undefined)?.anyOf;
  if (!Array.isArray(branches) || branches.length === 0 || !branches.every((b) => b && 'const' in b)) return undefined;
  return branches.map((b) => b.const);
}

function describe(err: ErrorObject, all: readonly ErrorObject[]): { key: string; detail: string } {
  let key = err.instancePath || '/';
  let detail = err.message ?? 'is invalid';
  // a union of literals: name the allowed values instead of "must be equal to constant"
  const union = all.find((e) => e.keyword === 'anyOf' && e.instancePath === err.instancePath);
  const values = union ? enumValues(union.parentSchema) ?? enumValues(union.schema && { anyOf: union.schema }) : undefined;
  if (values && (err.keyword === 'const' || err.keyword === 'anyOf')) {
    return { key, detail: `must be one of ${values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')} (found ${JSON.stringify(err.data)})` };
  }
  if (err.keyword === 'x-cron') return { key, detail };
  if (err.keyword === 'additionalProperties') {
    key = `${err.instancePath}/${(err.params as { additionalProperty: string }).additionalProperty}`;
    detail = 'is not a known key';
  } else if (err.keyword === 'required') {
    key = `${err.instancePath}/${(err.params as { missingProperty: string }).missingProperty}`;
    detail = 'is required';
  } else if (err.keyword === 'pattern' || err.keyword === 'format') {
    const desc = (err.parentSchema as { description?: string } | undefined)?.description;
    if (desc) detail = `must be ${desc}`;
  }
  return { key, detail };
}

/** Validate a value against a schema; throws IBP_ERR_CFG_INVALID naming `file` and the key. */
export function validate<S extends TSchema>(schema: S, value: unknown, file: string): Static<S> {
  const v = validator(schema);
  if (!v(value)) {
    const { key, detail } = describe(v.errors![0]!, v.errors!);
    throw new IbpError('IBP_ERR_CFG_INVALID', { file, key, detail });
  }
  return value as Static<S>;
}

/** Parse JSON text with comments; throws IBP_ERR_CFG_PARSE naming the file. */
export function parseJsonText(text: string, file: string): unknown {
  const stripped = stripJsonComments(text); // comments become spaces: positions stay those of `text`
  try {
    return sjson.parse(stripped, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    throw new IbpError('IBP_ERR_CFG_PARSE', { file, detail: withLineColumn((e as Error).message, stripped) });
  }
}

/**
 * JSON.parse says "… at position N" for some errors and nothing for others ("Unexpected token '}',
 * "…" is not valid JSON"): say line and column, 1-based. Without a position, the offending
 * character is found by bisection on prefixes — a prefix that stops before it only fails at its
 * end ("Unexpected end of JSON input", or a position equal to its length), one that contains it
 * fails on it.
 */
export function withLineColumn(message: string, text: string): string {
  if (/line \d+ column \d+/.test(message)) return message;
  const m = /at position (\d+)/.exec(message);
  let pos = m ? Number(m[1]) : /Unexpected end of JSON input/.test(message) ? text.length : undefined;
  if (pos === undefined) {
    const failsOnIt = (k: number): boolean => {
      try {
        JSON.parse(text.slice(0, k));
        return false;
      } catch (e) {
        const msg = (e as Error).message;
        const at = /at position (\d+)/.exec(msg);
        return !/Unexpected end of JSON input/.test(msg) && !(at && Number(at[1]) >= k);
      }
    };
    if (failsOnIt(text.length)) {
      let lo = 0;
      let hi = text.length; // failsOnIt(hi) holds
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (failsOnIt(mid)) hi = mid;
        else lo = mid;
      }
      pos = hi - 1;
    }
  }
  if (pos === undefined) return message;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  const what = message.replace(/\s*(in JSON )?at position \d+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '');
  return `${what} at line ${line} column ${column}`;
}

/** Read, parse and validate a config file. `tool` names the command that creates it (for the hint). */
export function loadConfigFile<S extends TSchema>(schema: S, file: string, tool = 'ibms'): Static<S> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new IbpError('IBP_ERR_CFG_NOT_FOUND', { file, tool });
    throw new IbpError('IBP_ERR_CFG_PARSE', { file, detail: (e as Error).message });
  }
  return validate(schema, parseJsonText(text, file), file);
}
