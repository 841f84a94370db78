/**
 * The negotiation of signed and encrypted transactions through ibac (issue 11): servers with
 * security.sign_flag none / optional / required against clients that do not sign, sign when
 * possible, require signing, or require encryption. The client is node NODE of the server's
 * config space: its keyring is the real one (the space's public pairs and keys/, lib/node-keyring.ts).
 */
import t from 'tap';
import { createEnvironment, PHASE, ProtectionError, ServerError, TX_FLAG } from '../../ibac/index.js';
import { NODE } from './helpers/server.js';
import { server } from './helpers/tx-peer.js';

t.test('ibac: the negotiation matrix', async (t) => {
  const security: Record<string, Record<string, unknown>> = {
    none: { sign_flag: 'none', encrypt_flag: 'none' },
    optional: { sign_flag: 'optional', encrypt_flag: 'optional' },
    required: { sign_flag: 'required', encrypt_flag: 'none' },
  };
  const expect: Record<string, Record<string, number | string>> = {
    // client → granted bits, or the error code
    none: { none: 0, optional: 0, required: 'IBP_ERR_TX_NOT_GRANTED', encrypt: 'IBP_ERR_TX_NOT_GRANTED' },
    optional: { none: 0, optional: TX_FLAG.SIGN, required: TX_FLAG.SIGN, encrypt: TX_FLAG.SIGN | TX_FLAG.ENCRYPT },
    required: { none: 'IBP_ERR_TX_UNPROTECTED', optional: TX_FLAG.SIGN, required: TX_FLAG.SIGN, encrypt: 'IBP_ERR_TX_NOT_GRANTED' },
  };
  for (const policy of Object.keys(security)) {
    await t.test(`server sign_flag ${policy}`, async (t) => {
      // each server in its own subtest: its own home and config space
      const s = await server(t, security[policy]!);
      // the client is node NODE of the same config space: its keyring is the real one (space + keys/)
      const env = createEnvironment({ config: s.ibmaConf });
      t.teardown(() => env.destroy());
      for (const [client, want] of Object.entries(expect[policy]!)) {
        const opts = client === 'encrypt' ? { encrypt: true } : { sign: client as 'none' | 'optional' | 'required' };
        const body = Buffer.from(`${policy}/${client}`);
        const r = await env.requester(NODE, 'ibp_test_echo', body, undefined, opts).catch((e: unknown) => e);
        if (typeof want === 'number') {
          t.notOk(r instanceof Error, `client ${client}: served${r instanceof Error ? ` (${r.message})` : ''}`);
          if (r instanceof Error) continue;
          t.equal((r as { granted: number }).granted & (TX_FLAG.SIGN | TX_FLAG.ENCRYPT), want, `client ${client}: granted ${want}`);
          t.ok((r as { body: Buffer }).body.equals(body));
        } else {
          t.match(r, { code: want, phase: PHASE.SAFE }, `client ${client}: ${want}, SAFE (${(r as Error)?.message})`);
          t.ok(r instanceof ProtectionError || r instanceof ServerError);
        }
      }
      if (policy === 'none') return;
      // a long connection carries signed transactions with files one after the other (one ephemeral key)
      const conn = await env.connect(NODE, 'ibp_test_echo');
      for (let i = 0; i < 5; i++) {
        const r = await conn.sendRequestAndReceiveResponse('ibp_test_echo', `n${i}`, [{ name: 'a.txt', data: Buffer.from(`file${i}`) }], { sign: true, encrypt: policy === 'optional' });
        t.equal(r.body.toString(), `n${i}`);
        t.equal(r.granted & TX_FLAG.ENCRYPT, policy === 'optional' ? TX_FLAG.ENCRYPT : 0);
      }
      conn.disconnect();
    });
  }
});

