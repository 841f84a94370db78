/**
 * The app thread of a JS app with async entry points (ibas/app-js.ts, AppThread): loads its own
 * instance of the module, then runs each call the worker posts, awaiting the Promise on this
 * thread's event loop, and reports back over the port, bumping the shared counter the worker
 * waits on (Atomics.notify). kv/config come with the calls; log lines go back with the answer.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { errorText, isIbpError } from '../lib/errors.js';
import type { AppLog } from '../lib/app/api.js';
import { JsApp, type JsHost, type ThreadCall, type ThreadLogLine, type ThreadReply } from './app-js.js';

const { copy, port, signal } = workerData as { copy: string; port: MessagePort; signal: Int32Array };

function send(m: ThreadReply): void {
  port.postMessage(m);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

let kv = new Map<string, string>();
let config = new Map<string, string>();
let lines: ThreadLogLine[] = [];
const log: AppLog = {
  debug: (msg) => void lines.push({ level: 'debug', msg }),
  info: (msg) => void lines.push({ level: 'info', msg }),
  warn: (msg) => void lines.push({ level: 'warn', msg }),
  error: (msg) => void lines.push({ level: 'error', msg }),
};
const host: JsHost = {
  fileDir: '', thisNode: '', workerIndex: 0,
  kv: (k) => kv.get(k),
  config: (_app, k) => config.get(k),
  log: () => log,
  kvOf: () => kv,
  configOf: () => config,
};

let app: JsApp;
try {
  app = JsApp.load(copy, host, { inThread: true });
  send({ type: 'loaded' });
} catch (e) {
  send({ type: 'threw', code: 'IBP_ERR_APP_LOAD', message: errorText(e), log: [] });
  process.exit(1);
}

// one call at a time: the worker blocks until the answer
port.on('message', (call: ThreadCall) => {
  if (call.kv) kv = new Map(call.kv);
  config = new Map(call.config);
  Object.assign(host, call.host);
  lines = [];
  app.runInThread(call, (response, files) => send({ type: 'ahead', response, files })).then(
    (r) => send({ type: 'done', rc: r.rc, response: r.response, files: r.files, sentAhead: r.sentAhead, log: lines }),
    (e) => send({ type: 'threw', code: isIbpError(e) ? e.code : 'IBP_ERR_APP_THREW', message: isIbpError(e) ? String(e.params.detail ?? e.message) : errorText(e), log: lines }),
  );
});
