/**
 * `ibas -a init --ip IP --port P [--mode M] [--workers N | --max-count N] [--force] …`: write
 * etc/ibas.conf with IBP's keys and a comment on each (IBP: idempotent — an existing file is kept,
 * `WARN : <file> exist !`; `--force` rewrites it). The pool defaults to the machine: one worker per
 * CPU the process may use (os.availableParallelism()), not IBP's fixed 10 (each worker is a Node
 * process of tens of MB).
 * The home normally was initialised by `ibma -a init` already (its ibma.conf is how workers find
 * the config space); the folders are created here too if missing.
 */
import fs from 'node:fs';
import os from 'node:os';
import { IbpError } from '../lib/errors.js';
import { validate } from '../lib/config/load.js';
import { IbasConf, type MpmMode } from '../lib/config/ibas-conf.js';
import { HOME_DIRS, type Home } from '../lib/home.js';
import { defaultLogNames } from './instance.js';

export interface InitOptions {
  ip: string;
  port: number;
  mode?: MpmMode;
  maxCount?: number;
  minIdle?: number;
  maxIdle?: number;
  maxProcessCount?: number;
  /** Rewrite an existing ibas.conf. */
  force?: boolean;
}

/** Workers of a pool sized to this machine: one per CPU this process may use. */
export function machineWorkers(): number {
  return Math.max(1, Math.min(1024, os.availableParallelism()));
}

export function defaultConf(o: InitOptions, file: string): IbasConf {
  const names = defaultLogNames(o.ip, o.port);
  const maxCount = o.maxCount ?? machineWorkers();
  const conf: IbasConf = {
    server: { ip: o.ip, port: o.port },
    mpm: {
      mode: o.mode ?? 'STATIC_WORKERPOOL',
      max_count: maxCount,
      DYNAMIC_WORKERPOOL: {
        min_idle_count: o.minIdle ?? 1,
        max_idle_count: o.maxIdle ?? Math.max(1, Math.min(5, maxCount)),
        create_interval: 1,
        destroy_interval: 10,
      },
      max_process_count: o.maxProcessCount ?? 10000,
    },
    security: { sign_flag: 0, compress_flag: 1, encrypt_flag: 0 },
    app: { max_so_cache_count: 1000, js_max_heap_mb: 512 },
    comm: { max_frame_size: 16 * 1024 * 1024, max_file_size: 16 * 1024 * 1024 - 1024, max_files: 64, max_files_bytes: 64 * 1024 * 1024, header_timeout: 5, request_timeout: 30, keepalive_timeout: 60, keepalive_max_requests: 100, send_timeout: 10, listen_backlog: 1024 },
    monitor: { tick_ms: 100, adjust_interval: 1, heartbeat_interval: 5, stop_timeout: 30 },
    log: { level: 'info', main: names.main, monitor: names.monitor, worker: names.worker, event: names.event },
    ibma: { config_filename: 'ibma.conf' },
  };
  return validate(IbasConf, conf, file);
}

export function confText(c: IbasConf): string {
  const j = JSON.stringify;
  const d = c.mpm.DYNAMIC_WORKERPOOL;
  return `// ibas.conf: the transaction server (written by \`ibas -a init\`; JSON with comments)
{
  "server": { "ip": ${j(c.server.ip)}, "port": ${c.server.port} }, // listen address of the transactions (binary protocol and HTTP)
  "mpm": {
    "mode": ${j(c.mpm.mode)}, // FORK | STATIC_WORKERPOOL | DYNAMIC_WORKERPOOL
    "max_count": ${c.mpm.max_count}, // workers of a static pool; upper bound of a dynamic pool; concurrent FORK workers
    "DYNAMIC_WORKERPOOL": {
      "min_idle_count": ${d.min_idle_count}, // fewer idle workers than this: spawn (dynamic pool)
      "max_idle_count": ${d.max_idle_count}, // more idle workers than this: retire (dynamic pool)
      "create_interval": ${d.create_interval}, // most workers spawned per adjustment period
      "destroy_interval": ${d.destroy_interval} // most workers retired per adjustment period
    },
    "max_process_count": ${c.mpm.max_process_count} // a worker is recycled after this many transactions (0 = never)
  },
  "security": {
    "sign_flag": ${JSON.stringify(c.security.sign_flag)}, // signed transactions: none | optional | required (0 = none, 1 = optional; docs/security.md)
    "compress_flag": ${c.security.compress_flag}, // grant lz4 compression of bodies >= comm.min_compress_size of ibma.conf
    "encrypt_flag": ${JSON.stringify(c.security.encrypt_flag)} // encrypted transactions (implies signing): none | optional | required
  },
  "app": {
    "max_so_cache_count": ${c.app.max_so_cache_count}, // loaded app .so / .mjs packages kept per worker (LRU)
    "js_max_heap_mb": ${c.app.js_max_heap_mb ?? 512} // V8 heap limit of a worker (MiB): a JS app allocating without bound ends only its worker
  },
  "comm": {
    "max_frame_size": ${c.comm!.max_frame_size}, // largest frame body / HTTP body accepted, bytes
    "max_file_size": ${c.comm!.max_file_size}, // largest attached file, bytes
    "max_files": ${c.comm!.max_files}, // most attached files each way per transaction
    "max_files_bytes": ${c.comm!.max_files_bytes}, // total attached-file bytes each way per transaction
    "header_timeout": ${c.comm!.header_timeout}, // seconds from connection open (or a transaction's first byte) to a complete request header
    "request_timeout": ${c.comm!.request_timeout}, // seconds from a transaction's first byte to its complete request
    "keepalive_timeout": ${c.comm!.keepalive_timeout}, // seconds a connection may idle between transactions (old name idle_timeout)
    "keepalive_max_requests": ${c.comm!.keepalive_max_requests}, // HTTP requests per keep-alive connection; the last one closes it (0 = no limit)
    "send_timeout": ${c.comm!.send_timeout}, // seconds the client has to take in a response
    "listen_backlog": ${c.comm!.listen_backlog} // listen(2) backlog
  },
  "monitor": {
    "tick_ms": ${c.monitor!.tick_ms}, // manager tick: signals -> reap -> timeouts -> pool
    "adjust_interval": ${c.monitor!.adjust_interval}, // seconds between dynamic pool adjustments
    "heartbeat_interval": ${c.monitor!.heartbeat_interval}, // seconds between heartbeats to ibms
    "stop_timeout": ${c.monitor!.stop_timeout} // seconds a graceful stop waits before SIGKILL
  },
  "log": {
    "level": ${j(c.log.level)}, // trace, debug, info, warn, error, fatal
    "main": ${j(c.log.main)}, // the command line's own log
    "monitor": ${j(c.log.monitor)}, // the manager (IBP: monitor)
    "worker": ${j(c.log.worker)}, // one per worker, {n} = its slot
    "event": ${j(c.log.event)} // the home's event log (warn and above)
  },
  "ibma": {
    "config_filename": ${j(c.ibma.config_filename)} // the node agent's config: where the config space is
  }
}
`;
}

export function initConf(home: Home, confFile: string, o: InitOptions): string[] {
  const conf = defaultConf(o, confFile);
  const lines: string[] = [];
  const existed = new Set(HOME_DIRS.filter((d) => fs.existsSync(home.dir(d))));
  home.ensure();
  for (const d of HOME_DIRS) if (!existed.has(d)) lines.push(`mkdir ${home.dir(d)} ok`);
  if (!fs.existsSync(home.etc(conf.ibma.config_filename))) lines.push(`WARN : ${home.etc(conf.ibma.config_filename)} not found: run \`ibma -a init\` in this home before starting ibas`);
  const confExisted = fs.existsSync(confFile);
  if (confExisted && !o.force) {
    lines.push(`WARN : ${confFile} exist ! (--force rewrites it)`);
    return lines;
  }
  try {
    if (confExisted) fs.copyFileSync(confFile, `${confFile}.bak`);
    fs.writeFileSync(confFile, confText(conf), { mode: 0o644, flag: confExisted ? 'w' : 'wx' });
  } catch (e) {
    throw new IbpError('IBP_ERR_HOME_LAYOUT', { home: home.root, detail: `cannot write ${confFile}: ${(e as Error).message}` }, { cause: e });
  }
  lines.push(`${confFile} ${confExisted ? `rewritten (the previous one is ${confFile}.bak)` : 'created'} , mode[${conf.mpm.mode}] max_count[${conf.mpm.max_count}]${o.maxCount === undefined ? ` (one worker per CPU: ${machineWorkers()})` : ''}`);
  return lines;
}
