/**
 * Typed ibac client of a declared request / response pair (IBP's client calls that take and
 * return structs). Generated stubs (`--call APP=REQ:RSP`) return one:
 *
 *   const transfer = TRANSFER_client(env);
 *   const rsp = await transfer.call('BANK', { from: 'A', to: 'B', amount: '10.00' });
 *
 * The request is checked and packed before anything is sent (a bad field never leaves: an
 * IBP_ERR_MSG_* error, safe by construction). Transport failures are ibac's own typed errors
 * (SafeError: the app did not run; SuspiciousError: it may have run). A response that does not
 * match its declaration is IBP_ERR_MSG_* too, but the transaction DID run: treat it as suspicious.
 */
import type { IbacEnv } from '../../../ibac/env.js';
import type { ConnectOptions, SendOptions } from '../../../ibac/connect.js';
import type { MessageCodec, MessageFormat } from './codec.js';

export interface MessageClient<Req, Rsp> {
  readonly app: string;
  call(node: string, req: Req, opts?: SendOptions & ConnectOptions & { format?: MessageFormat }): Promise<Rsp>;
}

export function messageClient<Req, Rsp>(env: IbacEnv, app: string, req: MessageCodec<Req>, rsp: MessageCodec<Rsp>): MessageClient<Req, Rsp> {
  return {
    app,
    async call(node, value, opts = {}) {
      const { format = 'json', ...send } = opts;
      const body = req.pack(value, format);
      const answer = await env.requester(node, app, body, undefined, send);
      return rsp.unpack(answer.body, format);
    },
  };
}
