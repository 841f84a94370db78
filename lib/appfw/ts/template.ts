/**
 * Phased templates (IBP's ibts, "交易阶段管理层"): a transaction's function arrays hung on fixed
 * phases, each phase group in its own database transaction, a journal row registered before and
 * updated after, and an error jumping straight to after-trans. Three variants, as in IBP:
 *
 *   normal      BT | JR | PC(channel, operator, org, other) | BC(media, account, customer,
 *               business, other) | BP(media, account, customer, business, other) + AP | AT | JU
 *   send-ahead  … | BP | AT | response sent ahead | AP | JU          (accounting after the response)
 *   linked      … | BP | LK (outbound call, no database transaction open) | AP | AT | JU
 *               (an accounting failure after a good LK runs the schedule's `reverseLinked`)
 *
 *   BT before-trans, JR journal register, PC public checks, BC business checks, BP business
 *   processing, AP accounting, AT after-trans, JU journal update; `|` = a commit boundary.
 *
 * Function codes: 0 ok; > 0 a refusal (the function set the response: insufficient funds, …);
 * < 0 a system error (a throw is TM_THREW). A refusal in PC commits what PC did (e.g. a counter of
 * failed logins); anything else that fails rolls its group back. Database errors at a boundary
 * are IBP_ERR_TS_DB, handled as system errors.
 */
import { IbpError, errorText } from '../../errors.js';
import { defineBlock, TransEnv, type TmLog } from '../tm/env.js';
import { executeFuncArray, type FuncArray } from '../tm/tree.js';
import type { TransactionDb } from './database.js';

export type TemplateVariant = 'normal' | 'send-ahead' | 'linked';
export const TEMPLATE_VARIANTS: readonly TemplateVariant[] = ['normal', 'send-ahead', 'linked'];

/** IBP's struct TransSchedule_BT_PC_BP_AP_AT: a function array (or none) per phase. */
export interface Schedule {
  beforeTrans?: FuncArray;
  publicCheck?: { channel?: FuncArray; operator?: FuncArray; org?: FuncArray; other?: FuncArray };
  businessCheck?: { media?: FuncArray; account?: FuncArray; customer?: FuncArray; business?: FuncArray; other?: FuncArray };
  businessProcess?: { media?: FuncArray; account?: FuncArray; customer?: FuncArray; business?: FuncArray; other?: FuncArray };
  /** Variant `linked`: the outbound call (runs with no database transaction open). */
  linked?: FuncArray;
  /** Variant `linked`: undoes a good outbound call when accounting then fails. */
  reverseLinked?: FuncArray;
  accounting?: FuncArray;
  afterTrans?: FuncArray;
}

/** Journal hooks (IBP's TFA registering / updating the transaction table), each in its own database transaction. */
export interface JournalHooks {
  register: FuncArray;
  update: FuncArray;
}

/** Final states of a transaction, as the journal records them. */
export const JOURNAL_STATUS = {
  REGISTERED: 'REGISTERED',
  OK: 'OK',
  REFUSED: 'REFUSED',
  FAILED: 'FAILED',
  /** send-ahead: the answer left as a success, then accounting failed (reconcile it). */
  ACCOUNTING_FAILED: 'ACCOUNTING_FAILED',
  /** linked: accounting failed after the outbound call and its reversal failed too (escalate). */
  REVERSAL_FAILED: 'REVERSAL_FAILED',
} as const;
export type JournalStatus = (typeof JOURNAL_STATUS)[keyof typeof JOURNAL_STATUS];

/** What the journal hooks read (and the template keeps current): block JOURNAL on the bus. */
export interface JournalInfo {
  journal: string;
  transCode: string;
  status: JournalStatus;
  responseCode: number;
  responseDesc: string;
  /** The phase that failed, '' when none. */
  failedPhase: string;
}
export const JOURNAL = defineBlock<JournalInfo>('ibts.journal');

/** Response given when the transaction fails and no function set one (IBP: 999999). */
export const DEFAULT_FAILURE = { code: 999999, desc: 'transaction failed' } as const;
export const DEFAULT_SUCCESS = { code: 0, desc: 'transaction succeeded' } as const;

export interface ScheduleRun {
  variant: TemplateVariant;
  schedule: Schedule;
  transCode: string;
  /** The journal number of the call (ctx.journal). */
  journal: string;
  db: TransactionDb;
  journalHooks: JournalHooks;
  log: TmLog;
  /** Writes the response code / description into the response message. */
  onResponse?: (code: number, desc: string) => void;
  /** Puts blocks on the bus before the first phase (the request and response messages). */
  setup?: (te: TransEnv) => void;
  /** Variant send-ahead: sends the response now (pack it, ctx.write, ctx.sendAhead). */
  sendAhead?: (te: TransEnv) => void;
}

export interface ScheduleResult {
  /** 0 when every phase passed. */
  rc: number;
  status: JournalStatus;
  failedPhase: string;
  responseCode: number;
  responseDesc: string;
  te: TransEnv;
}

type Group = { readonly name: string; readonly arrays: ReadonlyArray<readonly [string, FuncArray | undefined]>; readonly commitRefusal: boolean };

/** Phase groups (one database transaction each) before the variant-specific tail. */
function checkGroups(s: Schedule): Group[] {
  return [
    { name: 'public-check', commitRefusal: true, arrays: [['channel', s.publicCheck?.channel], ['operator', s.publicCheck?.operator], ['org', s.publicCheck?.org], ['other', s.publicCheck?.other]] },
    { name: 'business-check', commitRefusal: false, arrays: [['media', s.businessCheck?.media], ['account', s.businessCheck?.account], ['customer', s.businessCheck?.customer], ['business', s.businessCheck?.business], ['other', s.businessCheck?.other]] },
  ];
}

function processGroup(s: Schedule, withAccounting: boolean): Group {
  const p = s.businessProcess;
  const arrays: Array<readonly [string, FuncArray | undefined]> = [['media', p?.media], ['account', p?.account], ['customer', p?.customer], ['business', p?.business], ['other', p?.other]];
  if (withAccounting) arrays.push(['accounting', s.accounting]);
  return { name: 'business-process', commitRefusal: false, arrays };
}

/** DB_SYSTEM_ERROR: what a failed begin / commit / rollback reports. */
export const TS_DB_ERROR = -2;

class Runner {
  readonly te: TransEnv;
  failedPhase = '';
  rc = 0;

  constructor(private readonly run: ScheduleRun) {
    this.te = new TransEnv({ transCode: run.transCode, log: run.log, db: run.db.handle, ...(run.onResponse ? { onResponse: run.onResponse } : {}) });
  }

  #db(op: 'begin' | 'commit' | 'rollback', phase: string): boolean {
    try {
      this.run.db[op]();
      this.te.log.debug(`ts: ${op} [${phase}]`);
      return true;
    } catch (e) {
      const err = new IbpError('IBP_ERR_TS_DB', { op, phase, detail: errorText(e) }, { cause: e });
      this.te.log.error(err.message);
      this.te.lastError = err;
      return false;
    }
  }

  #fail(phase: string, rc: number): void {
    if (this.rc === 0) {
      this.rc = rc;
      this.failedPhase = phase;
    }
  }

  /** One phase group in one database transaction. False when it failed (the caller goes to after-trans). */
  group(g: Group): boolean {
    if (!this.#db('begin', g.name)) {
      this.#fail(g.name, TS_DB_ERROR);
      return false;
    }
    for (const [phase, fa] of g.arrays) {
      const rc = executeFuncArray(this.te, fa);
      if (rc !== 0) {
        const name = `${g.name}/${phase}`;
        this.#fail(name, rc);
        this.te.log.info(`ts: phase [${name}] failed rc=${rc}: ${rc > 0 && g.commitRefusal ? 'commit' : 'rollback'}`);
        if (rc > 0 && g.commitRefusal) this.#db('commit', g.name) || this.#db('rollback', g.name);
        else this.#db('rollback', g.name);
        return false;
      }
    }
    if (!this.#db('commit', g.name)) {
      this.#db('rollback', g.name);
      this.#fail(g.name, TS_DB_ERROR);
      return false;
    }
    return true;
  }

  single(name: string, fa: FuncArray | undefined, commitRefusal: boolean): boolean {
    return this.group({ name, commitRefusal, arrays: [[name, fa]] });
  }

  /** A phase with no database transaction open (the linked outbound call). */
  bare(name: string, fa: FuncArray | undefined): boolean {
    const rc = executeFuncArray(this.te, fa);
    if (rc !== 0) this.#fail(name, rc);
    return rc === 0;
  }

  journal(status: JournalStatus): void {
    const info = this.te.getBlock(JOURNAL);
    info.status = status;
    info.responseCode = this.te.responseCode;
    info.responseDesc = this.te.responseDesc;
    info.failedPhase = this.failedPhase;
  }

  respond(): void {
    if (this.rc === 0) {
      if (!this.te.responseSet) this.te.setResponse(DEFAULT_SUCCESS.code, DEFAULT_SUCCESS.desc);
    } else if (!this.te.responseSet || this.te.responseCode === 0) {
      this.te.setResponse(DEFAULT_FAILURE.code, DEFAULT_FAILURE.desc);
    }
  }

  statusOf(): JournalStatus {
    return this.rc === 0 ? JOURNAL_STATUS.OK : this.rc > 0 ? JOURNAL_STATUS.REFUSED : JOURNAL_STATUS.FAILED;
  }
}

/** IBTSExecuteSchedule_BT_PC_BP_AP_AT: runs one transaction through a phased template. */
export function executeSchedule(run: ScheduleRun): ScheduleResult {
  if (!TEMPLATE_VARIANTS.includes(run.variant)) throw new IbpError('IBP_ERR_TS_TEMPLATE', { template: String(run.variant), detail: `unknown variant (${TEMPLATE_VARIANTS.join(', ')})` });
  if (run.variant !== 'linked' && (run.schedule.linked || run.schedule.reverseLinked)) throw new IbpError('IBP_ERR_TS_TEMPLATE', { template: run.variant, detail: 'linked / reverseLinked belong to the variant linked' });
  if (run.variant === 'send-ahead' && !run.sendAhead) throw new IbpError('IBP_ERR_TS_TEMPLATE', { template: run.variant, detail: 'needs a sendAhead hook' });
  const r = new Runner(run);
  const te = r.te;
  const s = run.schedule;
  run.setup?.(te);
  te.appendBlock(JOURNAL, { journal: run.journal, transCode: run.transCode, status: JOURNAL_STATUS.REGISTERED, responseCode: 0, responseDesc: '', failedPhase: '' });
  const finish = (): ScheduleResult => ({ rc: r.rc, status: te.getBlock(JOURNAL).status, failedPhase: r.failedPhase, responseCode: te.responseCode, responseDesc: te.responseDesc, te });

  // before-trans and the journal row: a failure here ends the transaction (no journal to update)
  if (!r.single('before-trans', s.beforeTrans, true) || !r.single('journal-register', run.journalHooks.register, false)) {
    r.respond();
    r.journal(r.statusOf());
    return finish();
  }

  let ok = r.group(checkGroups(s)[0] as Group) && r.group(checkGroups(s)[1] as Group);
  let status: JournalStatus | undefined;
  let sentAhead = false;
  switch (run.variant) {
    case 'normal':
      ok = ok && r.group(processGroup(s, true));
      r.single('after-trans', s.afterTrans, true);
      break;
    case 'send-ahead': {
      ok = ok && r.group(processGroup(s, false));
      r.single('after-trans', s.afterTrans, true);
      if (ok) {
        // the answer leaves now, as a success; accounting follows in its own transaction
        r.respond();
        run.sendAhead?.(te);
        sentAhead = true;
        if (!r.single('accounting', s.accounting, false)) {
          te.log.error(`ts: accounting failed after the response was sent ahead (journal ${run.journal}): reconcile`);
          status = JOURNAL_STATUS.ACCOUNTING_FAILED;
        }
      }
      break;
    }
    case 'linked': {
      ok = ok && r.group(processGroup(s, false));
      if (ok && r.bare('linked', s.linked)) {
        if (!r.single('accounting', s.accounting, false)) {
          const reversed = r.bare('reverse-linked', s.reverseLinked);
          if (!reversed) status = JOURNAL_STATUS.REVERSAL_FAILED;
        }
      }
      r.single('after-trans', s.afterTrans, true);
      break;
    }
  }
  if (!sentAhead) r.respond();
  r.journal(status ?? r.statusOf());
  if (!r.single('journal-update', run.journalHooks.update, false)) te.log.error(`ts: journal ${run.journal} not updated: ${te.lastError?.message ?? 'hook failed'}`);
  return finish();
}
