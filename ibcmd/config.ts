/**
 * etc/ibcmd.conf: the remote-command agent's settings, its defaults for `ibcmd -a init`, and the
 * checks `ibcmd -a check` runs (like `nginx -t`).
 *
 *   server          listen address (IBP's `ibcmd --ip --port`; default 127.0.0.1:26001)
 *   credential_file the credential of the caller named `default` (Bearer), mode 0600, relative to the home
 *   callers         more named callers, each with its own credential file; the audit names the caller
 *   auth            brute-force limit: requests with a wrong credential per client address (then 429)
 *   sandbox         the folder put/get work in and commands run in (cwd), relative to the home
 *   black_list      entries refused first: line patterns or {program, args} (audit.ts)
 *   white_list      entries allowed (a command must match one)
 *   exec            PATH entries put in front of the agent's PATH (checked: resolve.ts), output cap,
 *                   timeout, concurrency
 *   files           biggest file put accepts
 *   log / audit     the agent's log, the home's event log, and the audit log (one line a request)
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { LogSection } from '../lib/config/common.js';
import { loadConfigFile } from '../lib/config/load.js';
import { Ip, Port, Seconds } from '../lib/config/model.js';
import { Home, homeOfConf } from '../lib/home.js';
import { IbpError } from '../lib/errors.js';
import { compileList } from './audit.js';
import { commandPath } from './resolve.js';

export const DEFAULT_PORT = 26001;
export const CONF_NAME = 'ibcmd.conf';
export const PID_NAME = 'ibcmd.pid';

const Pattern = Type.String({ minLength: 1, maxLength: 1024, description: 'a command-line pattern (1..1024 characters)' });
const ProgramEntry = Type.Object({
  program: Type.String({ minLength: 1, maxLength: 4096, description: 'one program: a name found on the command PATH or a path' }),
  args: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { maxItems: 256, description: 'one pattern per argument: a glob, <sandbox-path>, or a last ...' })),
}, { additionalProperties: false });
const Entry = Type.Union([Pattern, ProgramEntry]);
export const CALLER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const Caller = Type.Object({
  name: Type.String({ pattern: CALLER_NAME.source, description: 'a caller name (letters, digits, _ - ., at most 64)' }),
  credential_file: Type.String({ minLength: 1, maxLength: 4096 }),
}, { additionalProperties: false });
/** The caller whose credential is `credential_file`. */
export const DEFAULT_CALLER = 'default';

export const IbcmdConf = Type.Object({
  server: Type.Object({ ip: Ip, port: Port }, { additionalProperties: false }),
  credential_file: Type.String({ minLength: 1, maxLength: 4096 }),
  /** More callers, each with its own credential; absent: only `default`. */
  callers: Type.Optional(Type.Array(Caller, { maxItems: 256 })),
  /** Requests with a missing or wrong credential a client address may make per window (then 429). Absent: 10 per 60 s. */
  auth: Type.Optional(Type.Object({
    max_failures: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    failure_window_seconds: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
  }, { additionalProperties: false })),
  sandbox: Type.String({ minLength: 1, maxLength: 4096 }),
  black_list: Type.Array(Entry, { maxItems: 10000 }),
  white_list: Type.Array(Entry, { maxItems: 10000 }),
  exec: Type.Object({
    /** Folders put in front of PATH for commands (the project's scripts/ and bin/). */
    path: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: 64 }),
    /** Bytes kept of stdout and of stderr each; a command writing more is killed. */
    max_output_size: Type.Integer({ minimum: 1, maximum: 256 * 1024 * 1024 }),
    /** Seconds a command may run before its process group is killed. */
    command_timeout: Seconds,
    /** Commands running at once; more are refused (503). */
    max_concurrent: Type.Integer({ minimum: 1, maximum: 1024 }),
  }, { additionalProperties: false }),
  files: Type.Object({
    /** Biggest file `put` accepts, bytes. */
    max_file_size: Type.Integer({ minimum: 1, maximum: 4 * 1024 * 1024 * 1024 }),
  }, { additionalProperties: false }),
  log: LogSection,
  audit: Type.Object({ file: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
}, { additionalProperties: false });
export type IbcmdConf = Static<typeof IbcmdConf>;

/** The project root (where bin/ and scripts/ are), from this module's place in dist/ibcmd/ or ibcmd/. */
export function projectRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = path.resolve(here, '..');
  return path.basename(up) === 'dist' ? path.dirname(up) : up;
}

export function defaultConf(ip = '127.0.0.1', port = DEFAULT_PORT): IbcmdConf {
  const root = projectRoot();
  return {
    server: { ip, port },
    credential_file: 'keys/ibcmd.credential',
    callers: [],
    auth: { max_failures: 10, failure_window_seconds: 60 },
    sandbox: 'file/ibcmd',
    black_list: ['rm *', '* rm *', 'shutdown*', 'reboot*', 'halt*', 'poweroff*', 'init *', 'mkfs*', 'dd *', 'kill * 1', 'chmod *', 'chown *'],
    white_list: [
      'ibms.sh *', 'ibma.sh *', 'ibas.sh *', 'ibcmd.sh status',
      { program: 'ls', args: ['-l', '<sandbox-path>', '...'] }, 'uptime', 'df -h', 'echo *', 'hostname',
    ],
    exec: { path: [path.join(root, 'scripts'), path.join(root, 'bin')], max_output_size: 1024 * 1024, command_timeout: 60, max_concurrent: 4 },
    files: { max_file_size: 64 * 1024 * 1024 },
    log: { level: 'info', main: 'log/ibcmd.log', event: 'log/event.log' },
    audit: { file: 'log/ibcmd_audit.log' },
  };
}

/** The commented sample `ibcmd -a init` writes (JSON with comments, as IBP's configs). */
export function renderConf(conf: IbcmdConf): string {
  const j = (v: unknown): string => JSON.stringify(v);
  const list = (items: readonly unknown[], indent = '  '): string => (items.length === 0 ? '[]' : `[\n${items.map((s) => `${indent}  ${j(s)}`).join(',\n')}\n${indent}]`);
  const auth = conf.auth ?? { max_failures: 10, failure_window_seconds: 60 };
  return `{
  // listen address of this agent (clients: ibcmd --ip IP --port PORT -a execmd ...)
  "server": { "ip": ${j(conf.server.ip)}, "port": ${conf.server.port} },
  // the credential of the caller named "default"; mode 0600; relative paths are relative to the home
  "credential_file": ${j(conf.credential_file)},
  // more callers, each with its own credential (made by \`ibcmd -a init\`); the audit line names the caller:
  // [ { "name": "ops", "credential_file": "keys/ibcmd_ops.credential" } ]
  "callers": ${list(conf.callers ?? [])},
  // a client address sending more than max_failures wrong credentials within the window gets 429
  "auth": { "max_failures": ${auth.max_failures}, "failure_window_seconds": ${auth.failure_window_seconds} },
  // put/get stay inside this folder, and commands run in it
  "sandbox": ${j(conf.sandbox)},
  // The program of a command is resolved as execFile would (exec.path, then the agent's PATH) to
  // the real path of the file that runs, and the lists match THAT file (resolved once at start):
  // - "PROG pattern": the whole line, * = any run of characters, ? = one character; PROG names
  //   the file it resolves to at start (the black list also matches PROG's base name);
  // - { "program": "ls", "args": ["-l", "<sandbox-path>", "..."] }: one pattern per argument
  //   (glob, <sandbox-path> = a relative path inside the sandbox, a last "..." repeats the one before).
  // The black list is checked first; then a command must match a white list entry.
  "black_list": ${list(conf.black_list)},
  "white_list": ${list(conf.white_list)},
  "exec": {
    // folders put in front of PATH for commands (the project's scripts/ and bin/); a group- or
    // world-writable folder (or one owned by another user) before a system folder stops the start
    "path": ${list(conf.exec.path, '    ')},
    "max_output_size": ${conf.exec.max_output_size}, // bytes kept of stdout and of stderr each
    "command_timeout": ${conf.exec.command_timeout}, // seconds; then the command's process group is killed
    "max_concurrent": ${conf.exec.max_concurrent} // commands at once; more are refused
  },
  "files": { "max_file_size": ${conf.files.max_file_size} }, // bytes put accepts
  "log": { "level": ${j(conf.log.level)}, "main": ${j(conf.log.main)}, "event": ${j(conf.log.event)} },
  // one line per request: who (caller), what, verdict, result
  "audit": { "file": ${j(conf.audit.file)} }
}
`;
}

export interface LoadedConf {
  conf: IbcmdConf;
  file: string;
  home: Home;
}

/** `-f NAME` means $IBP_HOME/etc/NAME; a path names its own home when it sits in `<home>/etc/`. */
export function resolveConf(name: string | undefined): { file: string; home: Home } {
  const n = name ?? CONF_NAME;
  const env = new Home();
  const file = env.confPath(n);
  return { file, home: n.includes('/') ? homeOfConf(file) : env };
}

/** Load and validate; the lists are compiled too so a bad pattern is named at load time. */
export function loadConf(name: string | undefined): LoadedConf {
  const { file, home } = resolveConf(name);
  const conf = loadConfigFile(IbcmdConf, file, 'ibcmd');
  compileList(conf.black_list.filter((e): e is string => typeof e === 'string'), `${file}: black_list`);
  compileList(conf.white_list.filter((e): e is string => typeof e === 'string'), `${file}: white_list`);
  const names = new Set([DEFAULT_CALLER]);
  (conf.callers ?? []).forEach((c, i) => {
    if (names.has(c.name)) throw new IbpError('IBP_ERR_CFG_INVALID', { file, key: `/callers/${i}/name`, detail: `repeats caller ${c.name}${c.name === DEFAULT_CALLER ? ' (the caller of credential_file)' : ''}` });
    names.add(c.name);
  });
  return { conf, file, home };
}

/** Problems `-a check` reports beyond the schema (warnings do not fail the check). */
export function checkConfFiles(loaded: LoadedConf): { errors: string[]; warnings: string[] } {
  const { conf, home } = loaded;
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const file of [conf.credential_file, ...(conf.callers ?? []).map((c) => c.credential_file)]) {
    const cred = home.resolve(file);
    try {
      const st = fs.statSync(cred);
      if ((st.mode & 0o077) !== 0) errors.push(`${cred} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
    } catch {
      errors.push(`${cred} is missing: run \`ibcmd -a init\``);
    }
  }
  const sandbox = home.resolve(conf.sandbox);
  try {
    if (!fs.statSync(sandbox).isDirectory()) errors.push(`sandbox ${sandbox} is not a folder`);
  } catch {
    warnings.push(`sandbox ${sandbox} does not exist yet: the agent creates it at start`);
  }
  for (const p of conf.exec.path) {
    if (!path.isAbsolute(p)) warnings.push(`exec.path ${p} is relative: it is resolved against the sandbox`);
  }
  const cp = commandPath(conf.exec.path, sandbox);
  errors.push(...cp.errors);
  warnings.push(...cp.warnings.filter((w) => conf.exec.path.some((p) => w.includes(path.resolve(sandbox, p)))));
  if (conf.white_list.length === 0) warnings.push('white_list is empty: every command will be refused');
  return { errors, warnings };
}
