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

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * One ajv for the whole process; defaults are filled in, unknown keys rejected by the schemas.
 * Our schemas are built by TypeBox, so ajv's meta-schema check (≈150 ms at each tool start) is off.
 */
export const ajv = addFormats(new Ajv({ allErrors: false, useDefaults: true, strict: false, verbose: true, validateSchema: false }));

const compiled = new WeakMap<TSchema, ValidateFunction>();

function validator(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

function describe(err: ErrorObject): { key: string; detail: string } {
  let key = err.instancePath || '/';
  let detail = err.message ?? 'is invalid';
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
    const { key, detail } = describe(v.errors![0]!);
    throw new IbpError('IBP_ERR_CFG_INVALID', { file, key, detail });
  }
  return value as Static<S>;
}

/** Parse JSON text with comments; throws IBP_ERR_CFG_PARSE naming the file. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return sjson.parse(stripJsonComments(text), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    throw new IbpError('IBP_ERR_CFG_PARSE', { file, detail: (e as Error).message });
  }
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
