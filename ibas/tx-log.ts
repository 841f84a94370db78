/**
 * The transaction log: one line per transaction in the worker's log (IBP's 交易日志), and the
 * per-app counters and latency histogram behind the manager's /metrics (ibas/app-stats.ts).
 *
 * The line keeps IBP's message shape for people
 * (`transaction , journal[J] app[A] client[node ip:port] rc[0 OK] app_rc[0] receive_us[..] app_us[..] send_us[..] via[binary]`)
 * and carries every field as a JSON key for tools (`jq 'select(.app=="A" and .rc!=0)'`):
 *
 *   kind "transaction", journal, gtrid (a leg of a multi-transaction), app, rc, rc_name, app_rc, client {node, ip, port},
 *   timings {receive_us, app_us, send_us, total_us}, via, reason (when rc ≠ 0)
 *
 * plus the worker logger's base fields (pid, role, slot, generation). The time split: receive
 * (first byte of the pre-request to the last byte of the request), app (somain), send (response
 * handed to the kernel); the histogram counts their sum. ` sent_ahead[1]` (and `sent_ahead: true`)
 * follows `via[..]` when the answer left early (send-ahead): rc is the app's final result, the
 * client got the early response; send_us is that early send's.
 */
import { writeRecord, type Logger } from '../lib/log.js';
import { resultName } from '../lib/protocol/result-codes.js';
import { AppStats } from './app-stats.js';

export interface TxRecord {
  journal: string;
  /** The global transaction id of a multi-transaction (absent or '' outside one). */
  gtrid?: string;
  app: string;
  clientNode: string;
  clientIp: string;
  clientPort: number;
  /** Wire result code (0 OK). */
  rc: number;
  /** What somain returned (0 when it did not run). */
  appRc: number;
  receiveUs: number;
  appUs: number;
  sendUs: number;
  /** binary | http */
  via: string;
  /** The failure text when rc ≠ 0. */
  message?: string;
  /** The client got the response early (send-ahead); rc is still the app's final result. */
  sentAhead?: boolean;
}

/** The per-app counters of this process (a worker attaches them once at start; see {@link useAppStats}). */
let appStats: AppStats | undefined;

/** Count every transaction recorded by this process in the app-stats segment `key` (ibas/worker-main.ts). */
export function useAppStats(key: number): void {
  try {
    appStats = AppStats.attach(key);
  } catch {
    appStats = undefined; // a segment of another layout: log lines only
  }
}

/** pino's level number of info. */
const INFO = 30;

/** A number as JSON text (JSON has no NaN or Infinity: pino writes null for them). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * The parts of the line that repeat from one transaction to the next (the client's node and ip,
 * the app, the result code), kept as finished text: `text` for the message (already escaped as
 * JSON string content), `json` for the fields. Most transactions of a worker come on the same
 * connection for the same app with rc 0, and quoting them again every time is a good part of the
 * line's cost.
 */
interface Parts {
  key: string;
  text: string;
  json: string;
}

/** `s` as the content of a JSON string (escaped, without the quotes). */
function esc(s: string): string {
  const q = JSON.stringify(s);
  return q.slice(1, -1);
}

export class TxLog {
  readonly #log: Logger;
  #client: Parts = { key: '', text: '', json: '' };
  #app: Parts = { key: '', text: '', json: '' };
  #rc: Parts = { key: '', text: '', json: '' };

  constructor(log: Logger) {
    this.#log = log;
  }

  record(r: TxRecord): void {
    const totalUs = r.receiveUs + r.appUs + r.sendUs;
    if (this.#log.levelVal > INFO) {
      // above info (log.level warn): no line, and none of its text is built; the counters still count
      this.#count(r, totalUs);
      return;
    }
    const rcName = resultName(r.rc);
    const q = JSON.stringify;
    // the port changes with every short connection: node and ip are kept as text, the port added
    const clientKey = `${r.clientNode}\0${r.clientIp}`;
    if (this.#client.key !== clientKey) {
      this.#client = { key: clientKey, text: ` client[${r.clientNode ? `${esc(r.clientNode)} ` : ''}${esc(r.clientIp)}:`, json: `,"client":{"node":${q(r.clientNode)},"ip":${q(r.clientIp)},"port":` };
    }
    const port = num(r.clientPort);
    if (this.#app.key !== r.app) this.#app = { key: r.app, text: ` app[${esc(r.app)}]`, json: `,"app":${q(r.app)}` };
    const rcKey = `${r.rc}\0${r.appRc}`;
    if (this.#rc.key !== rcKey) {
      this.#rc = { key: rcKey, text: ` rc[${r.rc} ${esc(rcName)}] app_rc[${r.appRc}]`, json: `,"rc":${num(r.rc)},"rc_name":${q(rcName)},"app_rc":${num(r.appRc)}` };
    }
    const journal = q(r.journal);
    const gtrid = r.gtrid ? q(r.gtrid) : '';
    const via = r.via === 'binary' ? '"binary"' : q(r.via);
    // the message as a JSON string literal, from parts already escaped (no scan of the whole text)
    let msg = `"transaction , journal[${journal.slice(1, -1)}]${gtrid ? ` gtrid[${gtrid.slice(1, -1)}]` : ''}${this.#app.text}${this.#client.text}${port}]${this.#rc.text} receive_us[${r.receiveUs}] app_us[${r.appUs}] send_us[${r.sendUs}] via[${via.slice(1, -1)}]${r.sentAhead ? ' sent_ahead[1]' : ''}`;
    if (r.rc !== 0) msg += ` reason[${esc(r.message ?? '')}]`;
    msg += '"';
    // the fields as JSON text (lib/log.ts writeRecord): the same keys, values and order as the
    // object below, without pino walking it
    const fields = `,"kind":"transaction","journal":${journal}${gtrid ? `,"gtrid":${gtrid}` : ''}${this.#app.json}${this.#rc.json}${this.#client.json}${port}},"timings":{"receive_us":${num(r.receiveUs)},"app_us":${num(r.appUs)},"send_us":${num(r.sendUs)},"total_us":${num(totalUs)}},"via":${via}${r.sentAhead ? ',"sent_ahead":true' : ''}${r.rc !== 0 ? `,"reason":${q(r.message ?? '')}` : ''}`;
    writeRecord(this.#log, 'info', INFO, fields, msg, () => this.#fields(r, rcName, totalUs));
    this.#count(r, totalUs);
  }

  #count(r: TxRecord, totalUs: number): void {
    try {
      appStats?.add(r.app, r.rc, totalUs);
    } catch {
      // counters are best effort: never fail a transaction over them
    }
  }

  /** The record as an object (what pino would be given; the fallback of writeRecord). */
  #fields(r: TxRecord, rcName: string, totalUs: number): Record<string, unknown> {
    const fields: Record<string, unknown> = {
      kind: 'transaction',
      journal: r.journal,
      ...(r.gtrid ? { gtrid: r.gtrid } : {}),
      app: r.app,
      rc: r.rc,
      rc_name: rcName,
      app_rc: r.appRc,
      client: { node: r.clientNode, ip: r.clientIp, port: r.clientPort },
      timings: { receive_us: r.receiveUs, app_us: r.appUs, send_us: r.sendUs, total_us: totalUs },
      via: r.via,
    };
    if (r.sentAhead) fields.sent_ahead = true;
    if (r.rc !== 0) fields.reason = r.message ?? '';
    return fields;
  }
}
