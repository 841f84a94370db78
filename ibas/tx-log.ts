/**
 * The transaction log: one line per transaction in the worker's log (IBP's 交易日志), with the
 * journal number, app, client, result and the time split — receive (first byte of the
 * pre-request to the last byte of the request), app (somain), send (response handed to the
 * kernel). Shape: `transaction , journal[J] app[A] client[node ip:port] rc[0 OK] receive_us[..] app_us[..] send_us[..]`,
 * ` sent_ahead[1]` after `via[..]` when the answer left early (send-ahead: rc is the app's final
 * result, the client got the early response; send_us is that early send's).
 */
import type { Logger } from '../lib/log.js';
import { resultName } from '../lib/protocol/result-codes.js';

export interface TxRecord {
  journal: string;
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

export class TxLog {
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  record(r: TxRecord): void {
    const line = `transaction , journal[${r.journal}] app[${r.app}] client[${r.clientNode} ${r.clientIp}:${r.clientPort}] rc[${r.rc} ${resultName(r.rc)}] app_rc[${r.appRc}] receive_us[${r.receiveUs}] app_us[${r.appUs}] send_us[${r.sendUs}] via[${r.via}]${r.sentAhead ? ' sent_ahead[1]' : ''}`;
    // the line carries everything; no duplicate structured copy (it would double the cost per transaction)
    if (r.rc === 0) this.#log.info(line);
    else this.#log.info(`${line} reason[${r.message ?? ''}]`);
  }
}
