/**
 * `ibma -s this_node|nodes|apps|nodes_kv|node_keys|status`: what the local config space holds, read through
 * the READER (lib/shm/config-space.ts), exactly as ibac and ibas see it, never by asking ibms.
 * Tables for people, `--json` for scripts.
 */
import fs from 'node:fs';
import { IbpError } from '../lib/errors.js';
import { printRows, type Column } from '../lib/cli.js';
import type { IbmaConf } from '../lib/config/ibma-conf.js';
import type { Home } from '../lib/home.js';
import { runningPid } from '../lib/pidfile.js';
import { ConfigSpace, type AppView } from '../lib/shm/config-space.js';
import { attachCount } from '../lib/shm/sysv.js';
import { cacheFile } from './cache.js';
import { keyState } from '../lib/node-keys.js';
import { listPrivateKeyFiles } from '../lib/node-key-files.js';
import { readState, stateFile } from './state-file.js';

export const SHOWS = ['this_node', 'nodes', 'apps', 'nodes_kv', 'node_keys', 'status'] as const;
export type Show = (typeof SHOWS)[number];

export interface ShowContext {
  confFile: string;
  conf: IbmaConf;
  home: Home;
  pidFile: string;
  json: boolean;
  out?: (s: string) => void;
}

/** Run one show; returns the exit code (status: 7 when the agent is not running). */
export function show(what: Show, ctx: ShowContext): number {
  const out = ctx.out ?? ((s: string) => process.stdout.write(s));
  if (what === 'status') return showStatus(ctx, out);
  const space = ConfigSpace.openKey(ctx.conf.shm.index_key);
  try {
    switch (what) {
      case 'this_node': {
        const h = space.header();
        if (ctx.json) out(`${JSON.stringify({ this_node: h.thisNode })}\n`);
        else out(`${h.thisNode}\n`);
        break;
      }
      case 'nodes':
        printRows(nodeRows(space), NODE_COLUMNS, ctx.json, out);
        break;
      case 'apps':
        printRows(space.apps(), APP_COLUMNS, ctx.json, out);
        break;
      case 'nodes_kv': {
        const rows = space.nodes().flatMap((n) => space.kvs(n.name).map(([key, value]) => ({ node: n.name, key, value })));
        printRows(rows, KV_COLUMNS, ctx.json, out);
        break;
      }
      case 'node_keys':
        printRows(nodeKeyRows(space, ctx.home), NODE_KEY_COLUMNS, ctx.json, out);
        break;
    }
  } finally {
    space.close();
  }
  return 0;
}

export interface NodeRow {
  node: string;
  invalid: number;
  key_exp: string;
  ip: string;
  port: number | '';
  host_invalid: number | '';
  load: number | '';
  retry_at: number | '';
}

function nodeRows(space: ConfigSpace): NodeRow[] {
  const rows: NodeRow[] = [];
  for (const n of space.nodes()) {
    const hosts = space.hosts(n.name);
    const base = { node: n.name, invalid: Number(n.invalid), key_exp: n.keyExp ?? '' };
    if (hosts.length === 0) rows.push({ ...base, ip: '', port: '', host_invalid: '', load: '', retry_at: '' });
    for (const h of hosts) rows.push({ ...base, ip: h.ip, port: h.port, host_invalid: Number(h.invalid), load: space.getHostLoad(h.index), retry_at: space.getRetryAt(h.index) });
  }
  return rows;
}

const NODE_COLUMNS: Column<NodeRow>[] = [
  { header: 'node', value: (r) => r.node },
  { header: 'invalid', value: (r) => r.invalid },
  { header: 'key_exp', value: (r) => r.key_exp },
  { header: 'ip', value: (r) => r.ip },
  { header: 'port', value: (r) => r.port },
  { header: 'host invalid', value: (r) => r.host_invalid },
  { header: 'load', value: (r) => r.load },
  { header: 'suspended until', value: (r) => (r.retry_at ? new Date(r.retry_at).toISOString() : '') },
];

const APP_COLUMNS: Column<AppView>[] = [
  { header: 'app', value: (a) => a.app },
  { header: 'desc', value: (a) => a.desc },
  { header: 'bin', value: (a) => a.bin },
  { header: 'timeout', value: (a) => a.timeout },
  { header: 'timeout2', value: (a) => a.timeout2 },
  { header: 'server node', value: (a) => a.serverNode },
  { header: 'invalid', value: (a) => Number(a.invalid) },
  { header: 'sha256', value: (a) => (a.sha256 ? `${a.sha256.slice(0, 12)}…` : '') },
];

export interface NodeKeyRow {
  node: string;
  kcv: string;
  state: string;
  enable_at: number;
  disable_at: number;
  /** This home holds the pair's private key file (only pairs of this node can). */
  private_key: boolean;
}

/** The public pairs of the space with their state now, and whether this home holds the private key. */
function nodeKeyRows(space: ConfigSpace, home: Home): NodeKeyRow[] {
  const keys = space.nodeKeys();
  const thisNode = space.header().thisNode;
  const files = new Set(listPrivateKeyFiles(home.dir('keys'), thisNode));
  const now = Date.now();
  return keys.map((k) => ({ node: k.node, kcv: k.kcv, state: keyState(k, keys, now), enable_at: k.enableAt, disable_at: k.disableAt, private_key: k.node === thisNode && files.has(k.kcv) }));
}

const NODE_KEY_COLUMNS: Column<NodeKeyRow>[] = [
  { header: 'node', value: (r) => r.node },
  { header: 'kcv', value: (r) => r.kcv },
  { header: 'state', value: (r) => r.state },
  { header: 'enable at', value: (r) => (r.enable_at ? new Date(r.enable_at).toISOString() : '(at once)') },
  { header: 'disable at', value: (r) => (r.disable_at ? new Date(r.disable_at).toISOString() : '(never)') },
  { header: 'private key', value: (r) => (r.private_key ? 'yes' : '') },
];

const KV_COLUMNS: Column<{ node: string; key: string; value: string }>[] = [
  { header: 'node', value: (r) => r.node },
  { header: 'key', value: (r) => r.key },
  { header: 'value', value: (r) => r.value },
];

export interface StatusReport {
  running: boolean;
  pid?: number;
  node: string;
  index_key: string;
  space?: {
    generation: number;
    this_node: string;
    build_time: string;
    /** Key of the current config segment, its attach count, and the index's writer. */
    key: string;
    attached: number;
    writer_pid: number;
    published_at: string;
    epoch: string;
    version: number;
    nodes: number;
    hosts: number;
    apps: number;
    kvs: number;
  };
  space_error?: string;
  ibms?: { url: string; link: string; since: string; failures: number; last_error?: string };
  held?: { epoch: string; version: number; source: string };
  packages_failed?: string[];
  cache?: { file: string; exists: boolean };
}

function showStatus(ctx: ShowContext, out: (s: string) => void): number {
  const pid = runningPid(ctx.pidFile);
  const report: StatusReport = { running: pid !== undefined, node: ctx.conf.this_node, index_key: `0x${ctx.conf.shm.index_key.toString(16)}` };
  if (pid !== undefined) report.pid = pid;
  try {
    const space = ConfigSpace.openKey(ctx.conf.shm.index_key);
    try {
      const h = space.header();
      const ix = space.indexInfo();
      report.space = {
        generation: h.generation,
        this_node: h.thisNode,
        build_time: new Date(h.buildTime).toISOString(),
        key: `0x${ix.key.toString(16)}`,
        // minus this reader's own attachment (mapping + pin)
        attached: Math.max(0, attachCount(ix.key) - 2),
        writer_pid: ix.writerPid,
        published_at: new Date(ix.publishedAt).toISOString(),
        epoch: h.epoch,
        version: h.bundleVersion,
        nodes: h.nodeCount,
        hosts: h.hostCount,
        apps: h.appCount,
        kvs: h.kvCount,
      };
    } finally {
      space.close();
    }
  } catch (e) {
    report.space_error = e instanceof IbpError ? e.message : String(e);
  }
  const st = readState(stateFile(ctx.home, ctx.conf.this_node));
  if (st && pid !== undefined && st.pid === pid) {
    report.ibms = { url: st.ibms.url, link: st.ibms.link, since: new Date(st.ibms.since).toISOString(), failures: st.ibms.failures, ...(st.ibms.lastError ? { last_error: st.ibms.lastError } : {}) };
    if (st.held) report.held = st.held;
    if (st.packages.failed.length > 0) report.packages_failed = st.packages.failed;
  }
  const cf = cacheFile(ctx.home, ctx.conf.this_node);
  report.cache = { file: cf, exists: fs.existsSync(cf) };
  if (ctx.json) {
    out(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const lines = [
      `ibma ${report.running ? `running, pid ${report.pid}` : 'NOT running'} , node[${report.node}] index_key[${report.index_key}]`,
      report.space
        ? `config space: generation ${report.space.generation} (version ${report.space.version} of epoch ${report.space.epoch}), segment ${report.space.key} built ${report.space.build_time}, ${report.space.attached} other attachments; ${report.space.nodes} nodes, ${report.space.hosts} hosts, ${report.space.apps} apps, ${report.space.kvs} kvs`
        : `config space: none (${report.space_error ?? 'not built'})`,
    ];
    if (report.ibms) lines.push(`ibms ${report.ibms.url}: ${report.ibms.link} since ${report.ibms.since}${report.ibms.last_error ? ` (${report.ibms.failures} failures, last: ${report.ibms.last_error})` : ''}`);
    if (report.held) lines.push(`holding config version ${report.held.version} of epoch ${report.held.epoch} (from ${report.held.source})`);
    if (report.packages_failed) lines.push(`packages failing: ${report.packages_failed.join(' ')}`);
    lines.push(`cache: ${report.cache.file}${report.cache.exists ? '' : ' (none)'}`);
    out(`${lines.join('\n')}\n`);
  }
  return report.running ? 0 : 7;
}
