/**
 * The answer a client gets when its worker dies inside a transaction (issue 5): a timeout (one of
 * the three tiers) or a crash. The worker cannot answer by the normal path then, so the bytes are
 * prepared beforehand, complete frames of the connection's protocol:
 *
 *   binary   a RESPONSE packet (rc APP_TIMEOUT / APP_CRASH, message naming the tier or the crash)
 *   http     an HTTP/1.1 504 (timeout) or 502 (crash) response with the X-Ibp-* headers, Connection: close
 *
 * Who writes them:
 *   tier 1   the worker's native watchdog (lib/native/ibp_crash.c guard), before the worker dies by SIGALRM
 *   crash    the worker's crash handler, before its backtrace
 *   tier 2/3 the manager, on a duplicate of the connection fd it took with pidfd_getfd(2) before
 *            signalling the worker (ibas/timeouts.ts), once the worker died by that signal
 * After the answer the connection closes (the worker is gone): the client sees one clear error.
 */
import { IbpError } from '../lib/errors.js';
import { encodePacket } from '../lib/protocol/codec.js';
import { RC, resultName } from '../lib/protocol/result-codes.js';

/** How a connection speaks (scoreboard slot field; 0 = no connection). */
export const TRANSPORT = { NONE: 0, BINARY: 1, HTTP: 2 } as const;
export type Transport = (typeof TRANSPORT)[keyof typeof TRANSPORT];

export const TIER_TEXT = {
  1: 'tier 1: the worker alarm at timeout2 ended it',
  2: 'tier 2: the manager sent SIGTERM at 1.5 x timeout2',
  3: 'tier 3: the manager sent SIGKILL at 2 x timeout2',
} as const;

export function timeoutMessage(app: string, timeout2Ms: number, tier: 1 | 2 | 3): string {
  return new IbpError('IBP_ERR_APP_TIMEOUT', { app, ms: timeout2Ms, tier: TIER_TEXT[tier] }).message;
}

export function crashMessage(app: string): string {
  return new IbpError('IBP_ERR_APP_CRASH', { app, signal: 'a fatal signal; the worker log has the signal and the backtrace' }).message;
}

function answer(transport: Transport, rc: number, message: string, status: number): Buffer {
  if (transport === TRANSPORT.HTTP) {
    const body = Buffer.from(`${message}\n`);
    const head = `HTTP/1.1 ${status} ${status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}\r\n`
      + 'Content-Type: text/plain; charset=utf-8\r\n'
      + `Content-Length: ${body.length}\r\n`
      + `X-Ibp-Rc: ${rc}\r\nX-Ibp-Result: ${resultName(rc)}\r\nX-Ibp-App-Rc: 0\r\n`
      + `X-Ibp-Message: ${message.replace(/[^\x20-\x7e]/g, '?')}\r\n`
      + 'Connection: close\r\n\r\n';
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  }
  return encodePacket({ type: 'RESPONSE', rc, appRc: 0, load: { working: 0, total: 0 }, fileCount: 0, appUs: 0, message, body: Buffer.alloc(0) });
}

/** A PRE_ANSWER (rc OK) for a tier 2/3 answer whose worker held its own pre-answer unsent. */
export function preAnswer(): Buffer {
  return encodePacket({ type: 'PRE_ANSWER', rc: RC.OK, load: { working: 0, total: 0 }, granted: 0, message: '' });
}

export function timeoutAnswer(transport: Transport, app: string, timeout2Ms: number, tier: 1 | 2 | 3): Buffer {
  return answer(transport, RC.APP_TIMEOUT, timeoutMessage(app, timeout2Ms, tier), 504);
}

export function crashAnswer(transport: Transport, app: string): Buffer {
  return answer(transport, RC.APP_CRASH, crashMessage(app), 502);
}
