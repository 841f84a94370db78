/**
 * Validating JSON config files (read and parsed by lib/config/json-text.ts). A failure names the
 * file, the key and what was expected:
 *
 *   config file /h/etc/ibas.conf: key /mpm/max_count must be >= 1
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { Static, TSchema } from '@sinclair/typebox';
import { IbpError } from '../errors.js';
import { cronProblem } from './cron.js';
import { readConfigJson } from './json-text.js';

/** Parsing without validation lives in lib/config/json-text.ts (no ajv, no TypeBox). */
export { parseJsonText, readConfigJson, withLineColumn } from './json-text.js';

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

/** Read, parse and validate a config file. `tool` names the command that creates it (for the hint). */
export function loadConfigFile<S extends TSchema>(schema: S, file: string, tool = 'ibms'): Static<S> {
  return validate(schema, readConfigJson(file, tool), file);
}
