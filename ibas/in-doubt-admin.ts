/**
 * Operator commands for the transactions in doubt on this server (Tuxedo's printtrans /
 * committrans / aborttrans; docs/ibas.md "Two-phase commit you can recover"):
 *
 *   ibas -s in_doubt [--json]            every branch (gtrid + journal: a leg of a multi-transaction;
 *                                        one gtrid may have several here) this server voted yes for
 *                                        and has no decision for: app, coordinator node and
 *                                        address, age
 *   ibas -a commit_tx --gtrid X          decide by hand every branch of X here: a TX_CONTROL
 *   ibas -a abort_tx --gtrid X           COMMIT / ROLLBACK for the gtrid (empty journal = operator: every branch) sent to this server's
 *                                        own listen address, so a worker runs the app's
 *                                        socommit / sorollback and logs the outcome like any
 *                                        decision (by[operator]); the server must be running;
 *                                        where it signs, the decision is sealed with the
 *                                        server node's own key from the home's keys/;
 *                                        each branch's outcome is read back from the log
 *
 * Every command is audited in `$IBP_HOME/log/tx-audit.log` (lib/tx-audit.ts). A decision taken
 * by hand that differs from what the coordinator logged is reported to the coordinator as
 * IBP_ERR_TX_HEURISTIC when it drives its own: check the coordinator log first.
 */
import { IbpError, errorText } from '../lib/errors.js';
import { checkGtrid } from '../lib/gtrid.js';
import fs from 'node:fs';
import { readPrivateKeyFile } from '../lib/node-key-files.js';
import { parsePrivateKeyFileName, pickSendingKey, type NodePrivateKey } from '../lib/node-keys.js';
import { encodePacket } from '../lib/protocol/codec.js';
import { FRAME_FLAG, FRAME_TYPE } from '../lib/protocol/frame.js';
import { Ephemeral, sealPreRequest, TxSeal } from '../lib/protocol/tx-crypto.js';
import { policyOf } from '../lib/protocol/tx-security.js';
import { errorCodeOf, RC, resultName } from '../lib/protocol/result-codes.js';
import { audit } from '../lib/tx-audit.js';
import { Channel } from '../ibac/channel.js';
import type { Instance } from './instance.js';
import { ParticipantLog, type ParticipantRecord } from './participant-log.js';

export interface InDoubtRow extends ParticipantRecord {
  ageS: number;
}

/** A branch's outcome after an operator's decision, read back from the participant log. */
export interface BranchReport {
  journal: string;
  app: string;
  state: ParticipantRecord['state'];
  appRc?: number;
  body: Buffer;
}

/** The branches in doubt on this server's home, oldest first. */
export function inDoubtRows(inst: Instance, now = Date.now()): InDoubtRow[] {
  return new ParticipantLog(inst.home.root).inDoubt().map((r) => ({ ...r, ageS: Math.max(0, Math.round((now - r.preparedAt) / 1000)) }));
}

/** `ibas -s in_doubt`: print (and audit) the transactions in doubt. */
export function showInDoubt(inst: Instance, json: boolean, out: (s: string) => void = (s) => process.stdout.write(s)): InDoubtRow[] {
  const rows = inDoubtRows(inst);
  audit(inst.home, { action: 'in_doubt', result: `${rows.length} in doubt` });
  if (json) {
    out(`${JSON.stringify(rows.map(({ body: _b, ...r }) => r))}\n`);
    return rows;
  }
  out(`in doubt: ${rows.length}\n`);
  if (rows.length > 0) out('gtrid | app | journal | coordinator | age_s\n');
  for (const r of rows) out(`${r.gtrid} | ${r.app} | ${r.journal} | ${r.clientNode} ${r.clientIp} | ${r.ageS}\n`);
  return rows;
}

/**
 * The key an operator's decision is sealed with where the server signs (security.sign_flag not
 * none): the server node's own sending pair from the home's keys/ (only who can read them may
 * decide by hand; the server checks an operator's decision against its own key). Undefined: clear.
 */
function operatorSeal(inst: Instance, now = Date.now()): NodePrivateKey | undefined {
  const sign = policyOf(inst.conf.security).sign;
  if (sign === 'none') return undefined;
  const dir = inst.home.dir('keys');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    // no keys folder: no keys
  }
  const keys: NodePrivateKey[] = [];
  for (const name of names) {
    const p = parsePrivateKeyFileName(name);
    const k = p ? readPrivateKeyFile(dir, p.node, p.kcv) : undefined;
    if (k) keys.push(k);
  }
  const key = pickSendingKey(keys, now);
  if (!key && sign === 'required') {
    throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: `the server requires signing and ${dir} holds no private key of this node usable now (ibma writes them): an operator's decision is sealed with it` });
  }
  return key;
}

/** `ibas -a commit_tx|abort_tx --gtrid X`: decide by hand through the running server; audited. */
export async function resolveInDoubt(inst: Instance, commit: boolean, gtrid: string | undefined, timeoutMs = 30_000): Promise<{ rc: number; appRc: number; body: Buffer; branches: BranchReport[] }> {
  const action = commit ? 'commit_tx' : 'abort_tx';
  if (gtrid === undefined || gtrid === '') throw new IbpError('IBP_ERR_CLI_BAD_ARG', { arg: '--gtrid', detail: `${action} needs the gtrid (\`ibas -s in_doubt\` lists them)` });
  checkGtrid(gtrid);
  const op = commit ? 'COMMIT' : 'ROLLBACK';
  let result: { rc: number; appRc: number; body: Buffer; message: string };
  let seal: NodePrivateKey | undefined;
  try {
    seal = operatorSeal(inst);
  } catch (e) {
    audit(inst.home, { action, gtrid, result: 'not sent', detail: errorText(e) });
    throw e;
  }
  try {
    const ch = await Channel.open(inst.conf.server.ip, inst.conf.server.port, Math.min(timeoutMs, 5000));
    try {
      let frame = encodePacket({ type: 'TX_CONTROL', op, journal: '', gtrid });
      let answerSeal: TxSeal | undefined;
      if (seal) {
        const sealed = sealPreRequest(frame, seal, seal, new Ephemeral());
        frame = sealed.frame;
        answerSeal = new TxSeal('client', sealed.keys, seal.kcv, seal.kcv, false);
        // the answer must come sealed by this server's key (an ERROR never is)
        ch.opener = (f) => (f.type === FRAME_TYPE.ERROR && (f.flags & FRAME_FLAG.SEALED) === 0 ? f : answerSeal!.open(f));
      }
      await ch.write(frame);
      // a ref'd timer: the channel's socket does not keep the process alive by itself
      let timer: NodeJS.Timeout | undefined;
      const p = await Promise.race([ch.next(), new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      })]).finally(() => clearTimeout(timer));
      if (p.type !== 'TX_CONTROL_ANSWER') throw new Error(`the server answered ${p.type}${p.type === 'ERROR' ? `: ${p.message}` : ''}`);
      result = { rc: p.rc, appRc: p.appRc, body: p.body, message: p.message };
    } finally {
      ch.close();
    }
  } catch (e) {
    const detail = errorText(e);
    audit(inst.home, { action, gtrid, result: 'not sent', detail });
    throw new IbpError('IBP_ERR_DAEMON_NOT_RUNNING', { tool: 'ibas', pidfile: `${inst.pidFile}; ${action} ${gtrid} could not reach ${inst.conf.server.ip}:${inst.conf.server.port}: ${detail}` });
  }
  audit(inst.home, { action, gtrid, result: resultName(result.rc), detail: result.message || undefined });
  let branches: BranchReport[] = [];
  try {
    branches = new ParticipantLog(inst.home.root).branches(gtrid).filter((r) => r.journal !== '' || r.by !== 'presumed-abort' || r.app !== '')
      .map((r) => ({ journal: r.journal, app: r.app, state: r.state, appRc: r.appRc, body: Buffer.from(r.body ?? '', 'base64') }));
  } catch {
    // the log cannot be read from here: the server's answer is all there is
  }
  if (result.rc !== RC.OK) {
    const code = errorCodeOf(result.rc) ?? 'IBP_ERR_POOL_INTERNAL';
    const err = new IbpError(code, { gtrid, op, state: '?', by: '?', pid: '?', detail: result.message, app: '?', rc: result.appRc, file: '?' });
    Object.defineProperty(err, 'message', { value: result.message || resultName(result.rc), enumerable: false, writable: true, configurable: true });
    throw err;
  }
  return { ...result, branches };
}
