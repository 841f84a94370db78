/**
 * ibpsend, IBP's command-line client: send one transaction through ibac and print the response,
 * the status, the host used and the time taken.
 *
 *   ibpsend [-f ibma.conf] [--host IP:PORT] [--timeout S] [--json] node app req_msg_file [req_file …]
 *   ibpsend [-f ibma.conf] --recover [--json]     finish the two-phase commits of gone coordinator
 *                                                 processes of this client home (ibac/recovery.ts;
 *                                                 audited in log/tx-audit.log); exit 13 when some
 *                                                 are left (a participant unreachable)
 *
 * req_msg_file is the request message (`-` = stdin). A req_file is the name of a file in
 * $IBP_HOME/file (IBP's way) or a path (sent under its base name); at most 4. The response goes
 * to stdout as is (or to --output); the report goes to stderr. Response files are written to
 * $IBP_HOME/file.
 *
 * Exit: 0 ok · 12 SAFE failure (the app did not run: retry) · 13 SUSPICIOUS (the request may have
 * been processed: verify, reverse or escalate) · 14 the server answered a failure (app rc ≠ 0,
 * app timeout, crash) · 2 usage · others from docs/ERRORS.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Option } from 'commander';
import { badArg, createProgram, failCli, runCli } from '../lib/cli.js';
import { IbpError } from '../lib/errors.js';
import { resultName } from '../lib/protocol/result-codes.js';
import { createEnvironment, IbacError, PHASE, ServerError, type IbacResponse, type RecoveryReport, type RequestFile } from '../ibac/index.js';
import { audit } from '../lib/tx-audit.js';

interface Opts {
  conf: string;
  host?: string;
  timeout?: string;
  output?: string;
  journal?: string;
  json?: boolean;
  recover?: boolean;
  compress: boolean;
  sign?: boolean;
  encrypt?: boolean;
}

export const EXIT_SEND = { OK: 0, SAFE: 12, SUSPICIOUS: 13, ANSWERED: 14 } as const;

const STATUS_TEXT: Record<string, string> = {
  [PHASE.SAFE]: 'SAFE: nothing ran (the request did not leave, or was refused before the app ran): a retry is safe, and helps once the cause above is fixed or has passed',
  [PHASE.SUSPICIOUS]: 'SUSPICIOUS: the request may have been processed but no complete response came back; verify, reverse or escalate',
  [PHASE.ANSWERED]: 'FAILED: the server answered with a failure',
};

function readRequest(file: string): Buffer {
  try {
    return file === '-' ? fs.readFileSync(0) : fs.readFileSync(file);
  } catch (e) {
    throw badArg('req_msg_file', `cannot read ${file}: ${(e as Error).message}`);
  }
}

function requestFiles(names: string[]): RequestFile[] {
  return names.map((n) => {
    if (!n.includes('/')) return n;
    try {
      return { name: path.basename(n), data: fs.readFileSync(n) };
    } catch (e) {
      throw badArg('req_file', `cannot read ${n}: ${(e as Error).message}`);
    }
  });
}

function report(lines: [string, string][]): string {
  return lines.map(([k, v]) => `${k.padEnd(12)}: ${v}\n`).join('');
}

const program = createProgram('ibpsend', 'send one IBP transaction through ibac and print the response, status, host and time')
  .argument('[node]', 'server node')
  .argument('[app]', 'app (transaction code)')
  .argument('[req_msg_file]', 'file holding the request message (- for stdin)')
  .argument('[req_files...]', 'attached request files: names in $IBP_HOME/file, or paths (at most 4)')
  .option('-f, --conf <file>', "the client node's ibma.conf (a name without a path means $IBP_HOME/etc/NAME)", 'ibma.conf')
  .option('--host <ip:port>', 'use this host of the node instead of the least loaded')
  .option('--timeout <seconds>', "override the app's client timeout")
  .option('-o, --output <file>', 'write the response message to this file instead of stdout')
  .option('--journal <journal>', 'journal number of the transaction (default: generated)')
  .option('--no-compress', 'do not ask the server for lz4 compression')
  .addOption(new Option('--sign', 'sign the transaction with the node key (required: never sent in clear; keys/node-keyring.json)'))
  .addOption(new Option('--encrypt', 'encrypt the transaction too (implies --sign)'))
  .option('--json', 'print one JSON object (response as utf8 and base64) instead of the raw response and report')
  .option('--recover', 'instead of sending: finish the two-phase commits left by gone processes of this client home')
  .addHelpText('after', '\nExit: 0 ok, 12 SAFE failure, 13 SUSPICIOUS (verify, reverse or escalate), 14 failure answered by the server, 2 usage.')
  .action(async (node: string | undefined, app: string | undefined, reqFile: string | undefined, reqFiles: string[], o: Opts) => {
    if (o.recover) {
      if (node !== undefined) throw badArg('--recover', 'takes no node, app or request');
      await recover(o);
      return;
    }
    if (node === undefined || app === undefined || reqFile === undefined) throw badArg('node app req_msg_file', 'missing: give the node, the app and the request message file (or --recover)');
    let timeoutMs: number | undefined;
    if (o.timeout !== undefined) {
      const s = Number(o.timeout);
      if (!Number.isFinite(s) || s <= 0 || s > 86400) throw badArg('--timeout', `"${o.timeout}" is not a number of seconds (> 0, at most 86400)`);
      timeoutMs = Math.round(s * 1000);
    }
    if (o.host !== undefined && !/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/.test(o.host)) throw badArg('--host', `"${o.host}" is not IP:PORT`);
    if (reqFiles.length > 4) throw badArg('req_file', `${reqFiles.length} files: at most 4`);
    const request = readRequest(reqFile);
    const files = requestFiles(reqFiles);
    const env = createEnvironment({ config: o.conf, compress: o.compress, recover: false });
    const t0 = performance.now();
    let rsp: IbacResponse;
    try {
      rsp = await env.requester(node, app, request, files, { host: o.host, timeoutMs, journal: o.journal, sign: o.sign, encrypt: o.encrypt });
    } catch (e) {
      printFailure(e, node, app, performance.now() - t0, o.json === true, o.output);
      return;
    } finally {
      env.destroy();
    }
    printSuccess(rsp, o);
  });

/** `--recover`: one recovery pass over this client home's coordinator logs; audited. */
async function recover(o: Opts): Promise<void> {
  const env = createEnvironment({ config: o.conf, recover: false });
  let r: RecoveryReport;
  try {
    r = await env.recover();
  } finally {
    env.destroy();
  }
  audit(env.home, { action: 'recover', result: `${r.finished} finished, ${r.left} left`, detail: r.errors.join('; ') || undefined });
  if (o.json) {
    process.stdout.write(`${JSON.stringify({
      files: r.files, finished: r.finished, left: r.left, ignored_bytes: r.ignoredBytes, ms: round(r.ms), errors: r.errors,
      transactions: r.transactions.map((x) => ({ gtrid: x.gtrid, decision: x.decision, presumed_abort: x.presumed, finished: x.finished, participants: x.results.map((p) => ({ node: p.part.node, host: p.part.host, outcome: p.outcome, error: p.error?.message })) })),
    })}\n`);
  } else {
    for (const x of r.transactions) {
      process.stdout.write(`${x.gtrid} ${x.decision}${x.presumed ? ' (presumed abort)' : ''} ${x.finished ? 'finished' : 'LEFT'} ${x.results.map((p) => `${p.part.node}@${p.part.host}:${p.outcome}`).join(' ')}\n`);
    }
    for (const e of r.errors) process.stderr.write(`ibpsend: ${e}\n`);
    process.stdout.write(`ibpsend recover , logs[${r.files}] finished[${r.finished}] left[${r.left}] ignored_bytes[${r.ignoredBytes}] ms[${round(r.ms)}]\n`);
  }
  process.exitCode = r.left > 0 || r.errors.length > 0 ? EXIT_SEND.SUSPICIOUS : EXIT_SEND.OK;
}

function printSuccess(rsp: IbacResponse, o: Opts): void {
  if (o.json) {
    process.stdout.write(`${JSON.stringify({
      ok: true, status: 'OK', node: rsp.node, app: rsp.app, host: rsp.host, journal: rsp.journal, elapsed_ms: round(rsp.elapsedMs), app_us: rsp.appUs,
      load: rsp.load, comm_status: rsp.commStatus, response: rsp.body.toString('utf8'), response_base64: rsp.body.toString('base64'),
      files: rsp.files.map((f) => ({ name: f.name, path: f.path, size: f.size })),
    })}\n`);
    return;
  }
  if (o.output) fs.writeFileSync(o.output, rsp.body);
  else process.stdout.write(rsp.body);
  process.stderr.write(report([
    ['status', 'OK (rc 0, app rc 0)'],
    ['host', `${rsp.host} (node ${rsp.node})`],
    ['time', `${round(rsp.elapsedMs)} ms (app ${round(rsp.appUs / 1000)} ms)`],
    ['journal', rsp.journal],
    ['load', `${rsp.load.working}/${rsp.load.total} workers busy`],
    ['response', `${rsp.body.length} bytes${o.output ? ` written to ${o.output}` : ''}`],
    ...rsp.files.map((f, i): [string, string] => [`rsp_file ${i + 1}`, `${f.path} (${f.size} bytes)`]),
  ]));
  process.exitCode = EXIT_SEND.OK;
}

function printFailure(e: unknown, node: string, app: string, ms: number, json: boolean, output?: string): void {
  if (!(e instanceof IbacError)) {
    failCli('ibpsend', e);
    if (json && e instanceof IbpError) process.stdout.write(`${JSON.stringify({ ok: false, status: 'ERROR', code: e.code, message: e.message })}\n`);
    return;
  }
  const exit = e.phase === PHASE.SUSPICIOUS ? EXIT_SEND.SUSPICIOUS : e.phase === PHASE.SAFE ? EXIT_SEND.SAFE : EXIT_SEND.ANSWERED;
  const rc = e instanceof ServerError ? e.rc : (e as { rc?: number }).rc;
  // what the app answered with its failure (its own explanation, often): printed like a response
  const body = e instanceof ServerError ? e.body : undefined;
  if (json) {
    process.stdout.write(`${JSON.stringify({
      ok: false, status: e.phase, code: e.code, message: e.message, comm_status: e.commStatus, node, app, host: e.host ?? null, journal: e.journal ?? null,
      rc: rc ?? null, app_rc: e instanceof ServerError ? e.appRc : null, elapsed_ms: round(ms),
      ...(body ? { response: body.toString('utf8'), response_base64: body.toString('base64') } : {}),
    })}\n`);
  } else if (body && body.length > 0) {
    if (output) fs.writeFileSync(output, body);
    else process.stdout.write(body);
  }
  process.stderr.write(`ibpsend: ${e.message} (${e.code})\n`);
  process.stderr.write(report([
    ['status', STATUS_TEXT[e.phase]!],
    ['comm status', e.commStatus],
    ...(rc !== undefined ? [['server rc', `${rc} ${resultName(rc)}`] as [string, string]] : []),
    ...(e instanceof ServerError ? [['app rc', String(e.appRc)] as [string, string]] : []),
    ...(body !== undefined ? [['response', `${body.length} bytes${body.length > 0 && !json ? (output ? ` written to ${output}` : ' on stdout') : ''}`] as [string, string]] : []),
    ['host', `${e.host ?? '(none)'} (node ${node}, app ${app})`],
    ['time', `${round(ms)} ms`],
    ...(e.journal ? [['journal', e.journal] as [string, string]] : []),
  ]));
  process.exitCode = exit;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

await runCli(program);
