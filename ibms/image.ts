/**
 * The `.bin` config image (IBP's precompiled config, `ibms -a build_config`): one file per config
 * file, loaded at start instead of the JSON when it is newer.
 *
 * Layout, version 2:
 *
 *   offset 0   8 bytes   magic "IBPBIN2\n"
 *   offset 8   uint32 BE length K of the part name
 *   offset 12  K bytes   part name: nodes | apps | projects
 *   then       32 bytes  sha256 of the payload
 *   then       payload   v8.serialize() of the part's columns (below)
 *
 * The payload is columnar: one column per field instead of one object per record. Names (which
 * can never hold a NUL, see NAME_PATTERN) are NUL-joined strings, numbers are typed arrays, free
 * text is an array of strings. Decoding a column set is several times faster than decoding as
 * many objects, and no schema validation or reference check is needed: an image is only ever
 * written from a store that passed them, and the checksum proves it is that image.
 *
 *   nodes:    node  invalid(u8)  key_exp(string|null)[]  hostCount(u16)  hostIp  hostPort(u16)
 *             hostInvalid(i8, -1 = absent)  kvCount(u32)  kvKey  kvValue(string[])
 *   apps:     app  desc(string[])  bin  timeout(f64)  timeout2(f64)  invalid(u8)
 *             serverNode  serverNodeSet(u8: 0 = key absent)
 *   projects: project  serverCount(u32) serverNames  clientCount(u32) clientNames  appCount(u32) appNames
 */
import crypto from 'node:crypto';
import v8 from 'node:v8';
import type { AppConf, HostConf, NodeConf, ProjectConf } from '../lib/config/model.js';
import { IbpError } from '../lib/errors.js';
import type { ConfigData } from './store.js';

export type Part = keyof ConfigData;

const MAGIC = Buffer.from('IBPBIN2\n');
const SEP = '\0';

const join = (xs: readonly string[]): string => xs.join(SEP);
const split = (s: string, n: number): string[] => (n === 0 ? [] : s.split(SEP));

// ---------------------------------------------------------------- columns

interface NodeColumns {
  n: number;
  node: string;
  invalid: Uint8Array;
  keyExp: (string | null)[];
  hostCount: Uint16Array;
  hostIp: string;
  hostPort: Uint16Array;
  hostInvalid: Int8Array;
  kvCount: Uint32Array;
  kvKey: string;
  kvValue: string[];
}

interface AppColumns {
  n: number;
  app: string;
  desc: string[];
  bin: string;
  timeout: Float64Array;
  timeout2: Float64Array;
  invalid: Uint8Array;
  serverNode: string;
  serverNodeSet: Uint8Array;
}

interface ProjectColumns {
  n: number;
  project: string;
  serverCount: Uint32Array;
  serverNames: string;
  clientCount: Uint32Array;
  clientNames: string;
  appCount: Uint32Array;
  appNames: string;
}

function nodeColumns(nodes: readonly NodeConf[]): NodeColumns {
  const hosts = nodes.flatMap((n) => n.hosts);
  const kvs = nodes.flatMap((n) => Object.entries(n.kvs));
  return {
    n: nodes.length,
    node: join(nodes.map((n) => n.node)),
    invalid: Uint8Array.from(nodes, (n) => n.invalid),
    keyExp: nodes.map((n) => n.key_exp ?? null),
    hostCount: Uint16Array.from(nodes, (n) => n.hosts.length),
    hostIp: join(hosts.map((h) => h.ip)),
    hostPort: Uint16Array.from(hosts, (h) => h.port),
    hostInvalid: Int8Array.from(hosts, (h) => h.invalid ?? -1),
    kvCount: Uint32Array.from(nodes, (n) => Object.keys(n.kvs).length),
    kvKey: join(kvs.map(([k]) => k)),
    kvValue: kvs.map(([, v]) => v),
  };
}

function nodesOf(c: NodeColumns, bad: (d: string) => never): NodeConf[] {
  const names = split(c.node, c.n);
  const hostTotal = c.hostPort.length;
  const ips = split(c.hostIp, hostTotal);
  const kvTotal = c.kvValue.length;
  const keys = split(c.kvKey, kvTotal);
  if (names.length !== c.n || c.invalid.length !== c.n || c.keyExp.length !== c.n || c.hostCount.length !== c.n || c.kvCount.length !== c.n || ips.length !== hostTotal || c.hostInvalid.length !== hostTotal || keys.length !== kvTotal) bad('inconsistent node columns');
  const out = new Array<NodeConf>(c.n);
  let h = 0;
  let k = 0;
  for (let i = 0; i < c.n; i++) {
    const hosts = new Array<HostConf>(c.hostCount[i]!);
    for (let j = 0; j < hosts.length; j++, h++) {
      const inv = c.hostInvalid[h]!;
      hosts[j] = inv < 0 ? { ip: ips[h]!, port: c.hostPort[h]! } : { ip: ips[h]!, port: c.hostPort[h]!, invalid: inv as 0 | 1 };
    }
    const kvs: Record<string, string> = {};
    for (let j = c.kvCount[i]!; j > 0; j--, k++) kvs[keys[k]!] = c.kvValue[k]!;
    const keyExp = c.keyExp[i];
    out[i] = keyExp === null || keyExp === undefined
      ? { node: names[i]!, invalid: c.invalid[i] as 0 | 1, hosts, kvs }
      : { node: names[i]!, invalid: c.invalid[i] as 0 | 1, key_exp: keyExp, hosts, kvs };
  }
  if (h !== hostTotal || k !== kvTotal) bad('inconsistent node columns');
  return out;
}

function appColumns(apps: readonly AppConf[]): AppColumns {
  return {
    n: apps.length,
    app: join(apps.map((a) => a.app)),
    desc: apps.map((a) => a.desc),
    bin: join(apps.map((a) => a.bin)),
    timeout: Float64Array.from(apps, (a) => a.timeout),
    timeout2: Float64Array.from(apps, (a) => a.timeout2),
    invalid: Uint8Array.from(apps, (a) => a.invalid),
    serverNode: join(apps.map((a) => a.server_node ?? '')),
    serverNodeSet: Uint8Array.from(apps, (a) => (a.server_node === undefined ? 0 : 1)),
  };
}

function appsOf(c: AppColumns, bad: (d: string) => never): AppConf[] {
  const names = split(c.app, c.n);
  const bins = split(c.bin, c.n);
  const sn = split(c.serverNode, c.n);
  if (names.length !== c.n || bins.length !== c.n || sn.length !== c.n || c.desc.length !== c.n || c.timeout.length !== c.n || c.timeout2.length !== c.n || c.invalid.length !== c.n || c.serverNodeSet.length !== c.n) bad('inconsistent app columns');
  const out = new Array<AppConf>(c.n);
  for (let i = 0; i < c.n; i++) {
    out[i] = c.serverNodeSet[i]
      ? { app: names[i]!, desc: c.desc[i]!, bin: bins[i]!, timeout: c.timeout[i]!, timeout2: c.timeout2[i]!, invalid: c.invalid[i] as 0 | 1, server_node: sn[i]! }
      : { app: names[i]!, desc: c.desc[i]!, bin: bins[i]!, timeout: c.timeout[i]!, timeout2: c.timeout2[i]!, invalid: c.invalid[i] as 0 | 1 };
  }
  return out;
}

function projectColumns(projects: readonly ProjectConf[]): ProjectColumns {
  return {
    n: projects.length,
    project: join(projects.map((p) => p.project)),
    serverCount: Uint32Array.from(projects, (p) => p.server_nodes.length),
    serverNames: join(projects.flatMap((p) => p.server_nodes)),
    clientCount: Uint32Array.from(projects, (p) => p.client_nodes.length),
    clientNames: join(projects.flatMap((p) => p.client_nodes)),
    appCount: Uint32Array.from(projects, (p) => p.apps.length),
    appNames: join(projects.flatMap((p) => p.apps)),
  };
}

function lists(counts: Uint32Array, joined: string, bad: (d: string) => never): string[][] {
  let total = 0;
  for (const c of counts) total += c;
  const all = split(joined, total);
  if (all.length !== total) bad('inconsistent project columns');
  const out = new Array<string[]>(counts.length);
  let at = 0;
  for (let i = 0; i < counts.length; i++) {
    out[i] = all.slice(at, at + counts[i]!);
    at += counts[i]!;
  }
  return out;
}

function projectsOf(c: ProjectColumns, bad: (d: string) => never): ProjectConf[] {
  const names = split(c.project, c.n);
  if (names.length !== c.n || c.serverCount.length !== c.n || c.clientCount.length !== c.n || c.appCount.length !== c.n) bad('inconsistent project columns');
  const s = lists(c.serverCount, c.serverNames, bad);
  const cl = lists(c.clientCount, c.clientNames, bad);
  const a = lists(c.appCount, c.appNames, bad);
  const out = new Array<ProjectConf>(c.n);
  for (let i = 0; i < c.n; i++) out[i] = { project: names[i]!, server_nodes: s[i]!, client_nodes: cl[i]!, apps: a[i]! };
  return out;
}

// ---------------------------------------------------------------- framing

export function encodeImage<P extends Part>(part: P, items: ConfigData[P]): Buffer {
  const columns =
    part === 'nodes' ? nodeColumns(items as NodeConf[])
    : part === 'apps' ? appColumns(items as AppConf[])
    : projectColumns(items as ProjectConf[]);
  const payload = v8.serialize(columns);
  const name = Buffer.from(part);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(name.length);
  const digest = crypto.createHash('sha256').update(payload).digest();
  return Buffer.concat([MAGIC, len, name, digest, payload]);
}

/** Decode an image; any problem is IBP_ERR_CFG_BIN_IMAGE naming `file`. */
export function decodeImage<P extends Part>(file: string, part: P, bytes: Buffer): ConfigData[P] {
  const bad = (detail: string): never => {
    throw new IbpError('IBP_ERR_CFG_BIN_IMAGE', { file, detail });
  };
  if (bytes.length < MAGIC.length + 4) bad('truncated header');
  if (!bytes.subarray(0, MAGIC.length).equals(MAGIC)) bad(bytes.subarray(0, 6).toString('latin1') === 'IBPBIN' ? 'built by another version of ibms (rebuild it)' : 'not an IBP-TS config image (bad magic)');
  const k = bytes.readUInt32BE(MAGIC.length);
  const nameEnd = MAGIC.length + 4 + k;
  if (k > 32 || nameEnd + 32 > bytes.length) bad('truncated header');
  const name = bytes.subarray(MAGIC.length + 4, nameEnd).toString();
  if (name !== part) bad(`holds ${JSON.stringify(name)}, expected ${part}`);
  const digest = bytes.subarray(nameEnd, nameEnd + 32);
  const payload = bytes.subarray(nameEnd + 32);
  if (!crypto.createHash('sha256').update(payload).digest().equals(digest)) bad('checksum mismatch (truncated or altered)');
  let columns: unknown;
  try {
    columns = v8.deserialize(payload);
  } catch (e) {
    bad(`payload does not decode: ${(e as Error).message}`);
  }
  if (typeof columns !== 'object' || columns === null || typeof (columns as { n?: unknown }).n !== 'number') bad('payload is not a column set');
  try {
    if (part === 'nodes') return nodesOf(columns as NodeColumns, bad) as ConfigData[P];
    if (part === 'apps') return appsOf(columns as AppColumns, bad) as ConfigData[P];
    return projectsOf(columns as ProjectColumns, bad) as ConfigData[P];
  } catch (e) {
    if (e instanceof IbpError) throw e;
    return bad(`payload does not decode: ${(e as Error).message}`);
  }
}
