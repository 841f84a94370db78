/**
 * The app harness (`import { runApp, runAppInWorker } from 'ibp-ts/testing'`, issue 15): run an
 * app file (.mjs or .so) with a request and get its response back, without a registry, an agent
 * or a cluster.
 *
 *   runApp(file, opts)          in this process: the real loader of the worker (ibas/app-js.ts
 *                               for .mjs, the app cache and the host helper for .so), init before,
 *                               clean after; an async main is awaited; kv/config from opts; the
 *                               app's log lines come back in the result. openApp() keeps the app
 *                               loaded over several calls.
 *   runAppInWorker(file, opts)  in a real ibas worker process: `ibas -a start --foreground --app
 *                               FILE` in a temporary home on a free loopback port, called over the
 *                               HTTP adapter, stopped afterwards: the worker's own loader,
 *                               transaction path and adapter. The foreground worker has no manager,
 *                               so no timeout tiers (a debugger may stop it); files are in-process
 *                               only.
 *
 * Neither throws for what the app does: a throw is `error.code === 'IBP_ERR_APP_THREW'` with
 * rc RC.APP_THREW; an app's own non-zero code is `rc` (in process) / `appRc` (in a worker).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { AppCache } from '../../ibas/app-cache.js';
import { JsApp, isJsPackage, linkFramework, type JsHost } from '../../ibas/app-js.js';
import { initConf } from '../../ibas/init.js';
import { PROJECT_ROOT } from '../native/built-files.js';
import { Home } from '../home.js';
import { errorText, isIbpError } from '../errors.js';
import { RC, resultOf } from '../protocol/result-codes.js';
import { APP_PHASE, type AppLog } from './api.js';

export interface HarnessFile {
  name: string;
  data: Buffer | string;
}

export interface RunOptions {
  /** The app code the app sees (default: the file's base name without extension). */
  app?: string;
  request?: Buffer | string;
  /** Request files (in process only). */
  files?: HarnessFile[];
  /** This node's key/values for ctx.kv / kv_get. */
  kv?: Record<string, string>;
  /** The app's config record for ctx.config / config_get (app, desc, bin, timeout, …). */
  config?: Record<string, string>;
  thisNode?: string;
  clientNode?: string;
  clientIp?: string;
  journal?: string;
  /** Global transaction id (ctx.gtrid / ctx->gtrid). */
  gtrid?: string;
  /** Client timeout T in seconds (default 5; timeout2 = 1.5 T). */
  timeout?: number;
}

export interface RunResult {
  /** The wire result code: RC.OK, RC.APP_FAILED (the app returned non-zero), RC.APP_THREW, … */
  rc: number;
  /** The app's own return code. */
  appRc: number;
  response: Buffer;
  /** Response files with their content. */
  files: { name: string; data: Buffer }[];
  /** The app sent the response ahead (in process only). */
  sentAhead: boolean;
  /** The app's log lines (in process only). */
  log: { level: string; msg: string }[];
  /** The error when rc is not OK / APP_FAILED. */
  error?: { code: string; message: string };
}

/** An app loaded in this process for several calls. */
export interface OpenApp {
  call(opts?: RunOptions): Promise<RunResult>;
  /** Runs clean and removes the temporary folders. */
  close(): Promise<void>;
}

const appCodeOf = (file: string): string => path.basename(file).replace(/\.(mjs|so)$/, '');

/** Load `file` in this process (init runs now). */
export async function openApp(file: string, base: RunOptions = {}): Promise<OpenApp> {
  const src = path.resolve(file);
  if (!fs.existsSync(src)) throw new Error(`app file ${src} not found: build it first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-harness-'));
  linkFramework(dir);
  const soDir = path.join(dir, 'so');
  const fileDir = path.join(dir, 'file');
  fs.mkdirSync(soDir);
  fs.mkdirSync(fileDir);
  const bin = path.basename(src);
  fs.copyFileSync(src, path.join(soDir, bin));
  let opts = base;
  const lines: { level: string; msg: string }[] = [];
  const appLog = (): AppLog => ({
    debug: (msg) => lines.push({ level: 'debug', msg }),
    info: (msg) => lines.push({ level: 'info', msg }),
    warn: (msg) => lines.push({ level: 'warn', msg }),
    error: (msg) => lines.push({ level: 'error', msg }),
  });
  const kvOf = (): [string, string][] => Object.entries(opts.kv ?? {});
  const configOf = (app: string): [string, string][] => Object.entries({ app, timeout: String(opts.timeout ?? 5), ...opts.config });
  const reset = (): void => {
    for (const n of fs.readdirSync(fileDir)) fs.rmSync(path.join(fileDir, n), { recursive: true, force: true });
    for (const f of opts.files ?? []) fs.writeFileSync(path.join(fileDir, f.name), f.data);
  };
  const finish = (rc: number, response: Buffer, names: string[], sentAhead: boolean): RunResult => ({
    rc: rc === 0 ? RC.OK : RC.APP_FAILED, appRc: rc, response, sentAhead, log: lines.splice(0),
    files: names.map((name) => ({ name, data: fs.readFileSync(path.join(fileDir, name)) })),
  });
  const failed = (e: unknown): RunResult => {
    if (!isIbpError(e)) throw e;
    return { rc: resultOf(e), appRc: 0, response: Buffer.alloc(0), files: [], sentAhead: false, log: lines.splice(0), error: { code: e.code, message: e.message } };
  };
  const ctxOf = (o: RunOptions) => {
    const timeout = o.timeout ?? 5;
    return { app: o.app ?? appCodeOf(src), thisNode: o.thisNode ?? 'harness', clientNode: o.clientNode ?? '', clientIp: o.clientIp ?? '127.0.0.1', journal: o.journal ?? '', gtrid: o.gtrid ?? '', timeoutMs: timeout * 1000, timeout2Ms: timeout * 1500 };
  };

  if (isJsPackage(bin)) {
    const host: JsHost = {
      fileDir, thisNode: opts.thisNode ?? 'harness', workerIndex: 0,
      kv: (k) => opts.kv?.[k],
      config: (app, k) => Object.fromEntries(configOf(app))[k],
      log: appLog,
      kvOf: () => kvOf(),
      configOf: (app) => configOf(app),
    };
    // a private copy with a unique path: a fresh module instance per openApp
    const copyDir = fs.mkdtempSync(path.join(dir, 'L'));
    const copy = path.join(copyDir, bin);
    fs.copyFileSync(src, copy);
    const initApp = ctxOf(opts).app;
    let js: JsApp;
    try {
      js = JsApp.load(copy, host, { inThread: true }); // the harness awaits a Promise itself: no app thread
      if (js.has('soinit')) {
        const r = await js.invokeAsync('soinit', APP_PHASE.INIT, { app: initApp }, null, []);
        if (r.rc !== 0) throw new Error(`init of ${src} returned ${r.rc}`);
      }
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    return {
      async call(o = {}) {
        opts = { ...base, ...o };
        reset();
        try {
          const r = await js.invokeAsync('somain', APP_PHASE.MAIN, ctxOf(opts), Buffer.from(opts.request ?? ''), (opts.files ?? []).map((f) => f.name));
          return finish(r.rc, r.response, r.files, r.sentAhead);
        } catch (e) {
          return failed(e);
        }
      },
      async close() {
        try {
          if (js.has('soclean')) await js.invokeAsync('soclean', APP_PHASE.CLEAN, { app: initApp }, null, []).catch(() => undefined);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  }

  // a .so: the worker's own app cache and host helper; its log lines through a pino stream
  const log = pino({ level: 'debug' }, {
    write: (s: string) => {
      try {
        const j = JSON.parse(s) as { source?: string; level: number; msg: string };
        if (j.source === 'app') lines.push({ level: pino.levels.labels[j.level] ?? String(j.level), msg: j.msg.replace(/^app log , /, '') });
      } catch {
        // not JSON: not an app line
      }
    },
  });
  let gen = 0; // new options may change kv/config: a new generation makes the host re-read them
  const cache = new AppCache({
    max: 1, soDir, fileDir, log, watch: false, thisNode: opts.thisNode ?? 'harness',
    space: { generation: () => gen, kvs: () => kvOf(), kv: (k) => opts.kv?.[k], appConfig: (app) => configOf(app) },
  });
  const ref = { app: ctxOf(opts).app, bin };
  try {
    cache.get(ref);
  } catch (e) {
    await cache.close();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    async call(o = {}) {
      opts = { ...base, ...o };
      reset();
      try {
        gen++;
        const r = cache.get(ref).call(ctxOf(opts), Buffer.from(opts.request ?? ''), (opts.files ?? []).map((f) => f.name));
        return finish(r.rc, r.response, r.files, r.sentAhead ?? false);
      } catch (e) {
        return failed(e);
      }
    },
    async close() {
      await cache.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run `file` once in this process. */
export async function runApp(file: string, opts: RunOptions = {}): Promise<RunResult> {
  const app = await openApp(file, opts);
  try {
    return await app.call();
  } finally {
    await app.close();
  }
}

/** A real ibas worker serving one app file (foreground, temporary home). */
export interface AppServer {
  ip: string;
  port: number;
  /** One transaction over the HTTP adapter. */
  call(opts?: RunOptions): Promise<RunResult>;
  /** SIGTERM, wait for the exit, remove the home. */
  stop(): Promise<void>;
}

async function freePort(ip: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, ip, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Start `ibas -a start --foreground --app FILE` in a temporary home. */
export async function startAppServer(file: string, o: { timeoutMs?: number } = {}): Promise<AppServer> {
  const src = path.resolve(file);
  if (!fs.existsSync(src)) throw new Error(`app file ${src} not found: build it first`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-harness-home-'));
  const ip = '127.0.0.1';
  const port = await freePort(ip);
  const home = new Home(root);
  const conf = home.etc('ibas.conf');
  initConf(home, conf, { ip, port, mode: 'STATIC_WORKERPOOL', maxCount: 1 });
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'ibas'), '-f', conf, '-a', 'start', '--foreground', '--app', src], {
    env: { ...process.env, IBP_HOME: root }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cleanup = (): void => fs.rmSync(root, { recursive: true, force: true });
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  while (!stderr.includes('ibas foreground ok')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      cleanup();
      throw new Error(`ibas --foreground --app ${src} did not start: ${stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    ip, port,
    call(opts = {}) {
      const app = opts.app ?? appCodeOf(src);
      const headers: http.OutgoingHttpHeaders = {};
      if (opts.journal) headers['X-Ibp-Journal'] = opts.journal;
      if (opts.clientNode) headers['X-Ibp-Client-Node'] = opts.clientNode;
      return new Promise<RunResult>((resolve, reject) => {
        const req = http.request({ host: ip, port, path: `/ibp/${encodeURIComponent(app)}`, method: 'POST', headers, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const rc = Number(res.headers['x-ibp-rc'] ?? RC.POOL_INTERNAL);
            const result: RunResult = { rc, appRc: Number(res.headers['x-ibp-app-rc'] ?? 0), response: Buffer.concat(chunks), files: [], sentAhead: false, log: [] };
            if (rc !== RC.OK && rc !== RC.APP_FAILED) result.error = { code: String(res.headers['x-ibp-result'] ?? rc), message: String(res.headers['x-ibp-message'] ?? '') };
            resolve(result);
          });
        });
        req.setTimeout(Math.max(30_000, (opts.timeout ?? 5) * 3000), () => req.destroy(new Error('no answer from the worker')));
        req.on('error', (e) => reject(new Error(`call to the worker failed: ${errorText(e)}`)));
        req.end(opts.request ?? '');
      });
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      cleanup();
    },
  };
}

/** Run `file` once in a real worker. */
export async function runAppInWorker(file: string, opts: RunOptions = {}): Promise<RunResult> {
  const server = await startAppServer(file);
  try {
    return await server.call(opts);
  } finally {
    await server.stop();
  }
}
