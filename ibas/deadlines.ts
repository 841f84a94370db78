/**
 * The phases of a connection and their deadlines (issue 9). Each deadline is absolute: bytes that
 * trickle in never extend it.
 *
 *   phase      starts at                                         ends at                         key
 *   HEADER     connection open (first transaction) or the        complete request header          comm.header_timeout
 *              first byte of a later transaction                 (PRE_REQUEST frame / header block)
 *   REQUEST    the first byte of the transaction                 complete request (files + REQUEST / whole body)   comm.request_timeout
 *   KEEPALIVE  the end of the previous transaction (or keep-alive / 2PC message)   the next byte   comm.keepalive_timeout
 *   SEND       the first byte of an answer handed to the kernel  the last byte taken by the kernel  comm.send_timeout
 *
 * The HEADER phase of a transaction is also inside its REQUEST phase: the earlier of the two
 * deadlines applies. On expiry the connection is closed (binary: an ERROR packet
 * IBP_ERR_PROTO_DEADLINE first, best effort; HTTP: 408 when no answer is in flight), counted in
 * the slot's errors (every phase; a KEEPALIVE expiry, the normal end of an idle connection, is logged
 * at info, the others at warn) and logged once: `connection deadline , phase[P] client[ip:port] ms[N] , closed`.
 */
import type { CommSettings } from '../lib/config/ibas-settings.js';

export const PHASES = ['HEADER', 'REQUEST', 'KEEPALIVE', 'SEND'] as const;
export type Phase = (typeof PHASES)[number];

/** The ibas.conf key of each phase's deadline (docs/ibas.md lists them; test/ibas/deadlines.test.ts checks). */
export const PHASE_KEY: Record<Phase, string> = {
  HEADER: 'comm.header_timeout',
  REQUEST: 'comm.request_timeout',
  KEEPALIVE: 'comm.keepalive_timeout',
  SEND: 'comm.send_timeout',
};

export function phaseMs(comm: CommSettings, p: Phase): number {
  switch (p) {
    case 'HEADER': return comm.headerTimeoutMs;
    case 'REQUEST': return comm.requestTimeoutMs;
    case 'KEEPALIVE': return comm.keepaliveTimeoutMs;
    case 'SEND': return comm.sendTimeoutMs;
  }
}

/** Where a session stands in its input: nothing held, part of a header, or header done and the rest due. */
export type InputState = 'IDLE' | 'HEADER' | 'REQUEST';

/**
 * The read deadline of one connection, from its input state. The driver tells it when a
 * transaction's first byte came and when input went back to idle; it answers which phase a wait
 * is in and until when.
 */
export class ReadClock {
  readonly #comm: CommSettings;
  readonly #openedAt: number;
  /** A message (transaction, keep-alive, 2PC control) was completed on this connection. */
  #anyDone = false;
  #idleSince: number;
  #firstByteAt = 0;

  constructor(comm: CommSettings, openedAt: number) {
    this.#comm = comm;
    this.#openedAt = openedAt;
    this.#idleSince = openedAt;
  }

  /** Input went from idle to holding bytes of a message. */
  started(now: number): void {
    this.#firstByteAt = now;
  }

  /** Input is back to idle (a message was completed). */
  idle(now: number): void {
    this.#anyDone = true;
    this.#idleSince = now;
    this.#firstByteAt = 0;
  }

  /** The phase a wait for input is in, and its absolute deadline (ms epoch). */
  deadline(input: InputState): { phase: Phase; at: number } {
    const c = this.#comm;
    if (input === 'IDLE') {
      return this.#anyDone
        ? { phase: 'KEEPALIVE', at: this.#idleSince + c.keepaliveTimeoutMs }
        : { phase: 'HEADER', at: this.#openedAt + c.headerTimeoutMs };
    }
    const first = this.#firstByteAt || this.#idleSince;
    const request = first + c.requestTimeoutMs;
    if (input === 'REQUEST') return { phase: 'REQUEST', at: request };
    const header = (this.#anyDone ? first : this.#openedAt) + c.headerTimeoutMs;
    return header <= request ? { phase: 'HEADER', at: header } : { phase: 'REQUEST', at: request };
  }
}
