/**
 * The message receiver of a TS app (IBP's IBMSGVReceiver_JSON): unpacks the request into its
 * declared type, calls the transaction's entry `transmain(req, rsp, io)` with a response
 * initialised from its declaration, and packs the response into the app's answer — or sends it
 * ahead when transmain asks (io.sendAhead(): the client gets the response now, transmain goes on).
 *
 *   export function main(ctx: AppContext) {
 *     return receiveMessage(ctx, transfer_req, transfer_rsp, (req, rsp, io) => { … return 0; });
 *   }
 *
 * A request that does not match its declaration is refused before transmain runs: the typed
 * IBP_ERR_MSG_* error goes to the app's log and, as the response body, to the caller, and the app
 * returns RECEIVER_RC.BAD_REQUEST. A response that does not match (a bug of the app) returns
 * RECEIVER_RC.BAD_RESPONSE.
 */
import { isIbpError, errorText } from '../../errors.js';
import type { AppContext } from '../../app/api.js';
import type { MessageCodec, MessageFormat } from './codec.js';

/** App result codes of the receiver itself (transmain's own codes pass through). @enum */
export const RECEIVER_RC = { BAD_REQUEST: 40, BAD_RESPONSE: 41 } as const;

export interface ReceiverIo {
  /** Packs the response as it is now and sends it ahead (at most once). */
  sendAhead(): void;
  readonly sentAhead: boolean;
}

export type Transmain<Req, Rsp> = (req: Req, rsp: Rsp, io: ReceiverIo) => number | void;

/** The part of the app context the receiver uses. */
export type ReceiverContext = Pick<AppContext, 'request' | 'write' | 'sendAhead' | 'log'>;

export function receiveMessage<Req, Rsp>(
  ctx: ReceiverContext,
  reqCodec: MessageCodec<Req>,
  rspCodec: MessageCodec<Rsp>,
  transmain: Transmain<Req, Rsp>,
  format: MessageFormat = 'json',
): number {
  let req: Req;
  try {
    req = reqCodec.unpack(ctx.request, format);
  } catch (e) {
    if (!isIbpError(e)) throw e;
    ctx.log.error(`request refused: ${errorText(e)}`);
    // the caller sees why beside the app's code (ibpsend prints the body of a failed call)
    ctx.write(Buffer.from(`request refused: ${errorText(e)}`));
    return RECEIVER_RC.BAD_REQUEST;
  }
  const rsp = rspCodec.init();
  let sent = false;
  let packFailed = false;
  const pack = (): boolean => {
    try {
      ctx.write(rspCodec.pack(rsp, format));
      return true;
    } catch (e) {
      if (!isIbpError(e)) throw e;
      ctx.log.error(`response not sent: ${errorText(e)}`);
      packFailed = true;
      return false;
    }
  };
  const io: ReceiverIo = {
    sendAhead() {
      if (sent) return;
      if (pack()) {
        ctx.sendAhead();
        sent = true;
      }
    },
    get sentAhead() {
      return sent;
    },
  };
  const r = transmain(req, rsp, io);
  const rc = r === undefined ? 0 : r;
  if (!sent && !packFailed && !pack()) return RECEIVER_RC.BAD_RESPONSE;
  return packFailed && !sent ? RECEIVER_RC.BAD_RESPONSE : rc;
}
