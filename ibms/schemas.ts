/**
 * Shapes of REST request bodies, params and queries, built from the model's own schemas
 * (lib/config/model.ts), and the check that turns a mismatch into a 400 naming the key:
 *
 *   request body: key /timeout must be > 0
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { ajv } from '../lib/config/load.js';
import { AppConf, BinName, Flag01, HostConf, Ip, Name, Port, Seconds } from '../lib/config/model.js';
import { IbpError } from '../lib/errors.js';

const KvValue = Type.String({ maxLength: 4096 });
const NameList = (max: number) => Type.Array(Name, { maxItems: max });

export const AddNodeBody = Type.Object({
  node: Name,
  invalid: Type.Optional(Flag01),
  key_exp: Type.Optional(Type.String({ maxLength: 256 })),
  hosts: Type.Optional(Type.Array(HostConf, { maxItems: 256 })),
  kvs: Type.Optional(Type.Record(Name, KvValue)),
}, { additionalProperties: false });

export const SetNodeBody = Type.Object({
  invalid: Type.Optional(Flag01),
  key_exp: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

export const HostBody = Type.Object({ ip: Ip, port: Port, invalid: Type.Optional(Flag01) }, { additionalProperties: false });
export const HostParams = Type.Object({ node: Name, ip: Ip, port: Type.String({ pattern: '^[0-9]{1,5}$', description: 'a TCP port 1..65535' }) });

export const AddKvBody = Type.Object({ key: Name, value: KvValue }, { additionalProperties: false });
export const SetKvBody = Type.Object({ value: KvValue }, { additionalProperties: false });

export const AddAppBody = Type.Object({
  app: Name,
  desc: Type.String({ maxLength: 256 }),
  bin: BinName,
  timeout: Seconds,
  timeout2: Type.Optional(AppConf.properties.timeout2),
  invalid: Type.Optional(Flag01),
  server_node: Type.Optional(Type.Union([Name, Type.Literal('')], { description: 'a node name or ""' })),
}, { additionalProperties: false });

export const SetAppBody = Type.Object({
  desc: Type.Optional(Type.String({ maxLength: 256 })),
  bin: Type.Optional(BinName),
  timeout: Type.Optional(Seconds),
  timeout2: Type.Optional(AppConf.properties.timeout2),
  invalid: Type.Optional(Flag01),
  server_node: Type.Optional(Type.Union([Name, Type.Literal('')], { description: 'a node name or ""' })),
}, { additionalProperties: false });

export const AddProjectBody = Type.Object({
  project: Name,
  server_nodes: Type.Optional(NameList(10000)),
  client_nodes: Type.Optional(NameList(10000)),
  apps: Type.Optional(NameList(100000)),
}, { additionalProperties: false });

export const SetProjectBody = Type.Object({
  server_nodes: Type.Optional(NameList(10000)),
  client_nodes: Type.Optional(NameList(10000)),
  apps: Type.Optional(NameList(100000)),
}, { additionalProperties: false });

/** `-a rotate_credential`: which credential to re-issue (`node` names the node for kind node). */
export const RotateBody = Type.Object({
  kind: Type.Union([Type.Literal('admin'), Type.Literal('admin-ro'), Type.Literal('node')]),
  node: Type.Optional(Name),
}, { additionalProperties: false });
export const DownloadBody = Type.Object({ node: Name }, { additionalProperties: false });

export const HeartbeatBody = Type.Object({
  role: Type.Union([Type.Literal('ibma'), Type.Literal('ibas')], { description: 'ibma or ibas' }),
  node: Name,
  ip: Type.Optional(Ip),
  port: Type.Optional(Port),
  pid: Type.Integer({ minimum: 1, maximum: 0x7fffffff }),
  load: Type.Optional(Type.Number({ minimum: 0 })),
  /** The config version and epoch the sender holds (ibma: its bundle), for `-s sessions`. */
  version: Type.Optional(Type.Integer({ minimum: 0 })),
  epoch: Type.Optional(Type.String({ maxLength: 64 })),
  /** An ibas manager's token-free /metrics address `ip:port` (the console reads rates there). */
  metrics: Type.Optional(Type.String({ maxLength: 64, pattern: '^[0-9.]{7,15}:[0-9]{1,5}$', description: 'ip:port' })),
}, { additionalProperties: false });

/** `POST /v1/agent/session/end`: the session a stopping daemon leaves (as its heartbeats named it). */
export const SessionEndBody = Type.Object({
  role: Type.Union([Type.Literal('ibma'), Type.Literal('ibas')], { description: 'ibma or ibas' }),
  node: Name,
  ip: Type.Optional(Ip),
  port: Type.Optional(Port),
  pid: Type.Integer({ minimum: 1, maximum: 0x7fffffff }),
}, { additionalProperties: false });

export const ConfigQuery = Type.Object({
  node: Name,
  index: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'a version number' })),
  epoch: Type.Optional(Type.String({ maxLength: 64 })),
  wait: Type.Optional(Type.String({ pattern: '^[0-9]{1,6}(\\.[0-9]{1,3})?$', description: 'seconds, e.g. 30 or 0.5' })),
});

export const NameParam = (key: string) => Type.Object({ [key]: Name });
export const BinParam = Type.Object({ bin: BinName });
export const FilterQuery = Type.Object({
  node: Type.Optional(Name),
  app: Type.Optional(Name),
  project: Type.Optional(Name),
});

const compiled = new WeakMap<TSchema, ValidateFunction>();

function describe(err: ErrorObject): string {
  let key = err.instancePath || '/';
  let detail = err.message ?? 'is invalid';
  if (err.keyword === 'additionalProperties') {
    key = `${err.instancePath}/${(err.params as { additionalProperty: string }).additionalProperty}`;
    detail = 'is not a known key';
  } else if (err.keyword === 'required') {
    key = `${err.instancePath}/${(err.params as { missingProperty: string }).missingProperty}`;
    detail = 'is required';
  } else if (err.keyword === 'pattern' || err.keyword === 'format' || err.keyword === 'anyOf' || err.keyword === 'const') {
    const desc = (err.parentSchema as { description?: string } | undefined)?.description;
    if (desc) detail = `must be ${desc}`;
  }
  return `key ${key} ${detail}`;
}

/** Validate `value`; a mismatch is IBP_ERR_REG_INVALID (400) naming `what` and the key. */
export function check<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  if (value === undefined || value === null) throw new IbpError('IBP_ERR_REG_INVALID', { detail: `${what} is missing: send a JSON object` });
  if (!v(value)) {
    // a union reports each branch's failure first and then itself: name the union
    const errs = v.errors!;
    const err = errs.find((e) => e.keyword === 'anyOf') ?? errs[0]!;
    throw new IbpError('IBP_ERR_REG_INVALID', { detail: `${what}: ${describe(err)}` });
  }
  return value as Static<S>;
}
