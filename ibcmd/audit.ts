/**
 * The command-line audit of ibcmd: what may run. In this order:
 *
 *   1. syntax   the line is split on spaces into argv; there is no shell, so anything a shell
 *               would interpret is refused rather than passed on literally: separators and
 *               redirections (; | & > <), substitutions ($ ` ( )), quotes and escapes (' " \),
 *               globs and expansions (* ? [ ] { } ~ !), comments (#) and control characters
 *               (newline, CR, tab, NUL …).
 *   2. resolve  argv[0] is resolved as execFile would (resolve.ts) to the real path of the file
 *               that would run; nothing found → IBP_ERR_CMD_EXEC. That file is what runs.
 *   3. black    NO black-list entry may match (below; the black list also matches by base name).
 *   4. white    at least one white-list entry must match.
 *
 * Entries, resolved once at start against the agent's command PATH (so a program planted later
 * earlier on PATH does not match what the entry named):
 *
 * - a string `PROG REST…`: a pattern over the whole line, `*` any run of characters (spaces
 *   included), `?` one character, everything else literal. When PROG has no `*`/`?` it names a
 *   program: the request must run the very file PROG resolved to (black list: or a file with
 *   PROG's base name), and the line is matched with the program written as PROG. When PROG has a
 *   glob, the pattern is matched against the line with the program written as its real path
 *   (black list: also as given and as its base name).
 * - an object `{ "program": P, "args": [A1, A2, …] }`: P names one program (resolved as above);
 *   without `args` any arguments pass; with `args` there must be exactly one argument per
 *   pattern, each matching its pattern: `*`/`?` globs over that one argument, or
 *   `<sandbox-path>` — a relative path that stays inside the sandbox (no `..`, no absolute path,
 *   no link leading out). A last pattern `...` lets any number of further arguments match the
 *   pattern before it. So `{ "program": "ls", "args": ["-l", "<sandbox-path>", "..."] }` lists
 *   files of the sandbox and nothing else, where `ls *` would list /root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from '../lib/errors.js';
import type { ProgramResolver } from './resolve.js';

export const MAX_COMMAND_LENGTH = 4096;

/** Characters refused in a command line, each with the reason given back to the caller. */
const REFUSED: readonly [RegExp, string][] = [
  [/[\n\r]/, 'it contains a newline'],
  [/[\x00-\x1f\x7f]/, 'it contains a control character'],
  [/[;|&]/, 'it contains a shell separator (; | &): one command per request'],
  [/[<>]/, 'it contains a redirection (< >): there is no shell'],
  [/[$`()]/, 'it contains a substitution character ($ ` ( )): there is no shell'],
  [/['"\\]/, 'it contains a quote or backslash: arguments are split on spaces, no quoting'],
  [/[*?[\]{}~!]/, 'it contains a glob or expansion character (* ? [ ] { } ~ !): nothing is expanded here'],
  [/#/, 'it contains "#": there is no shell'],
];

export interface AuditedCommand {
  /** The argv to execFile: argv[0] is the program as the caller named it. */
  argv: string[];
  /** argv joined by single spaces: what is logged. */
  line: string;
  /** The real path of the file that runs (set by auditCommand). */
  program?: string;
}

/** Step 1: split a command line into argv, refusing shell syntax. */
export function parseCommandLine(text: string): AuditedCommand {
  if (typeof text !== 'string') throw new IbpError('IBP_ERR_CMD_SYNTAX', { detail: 'the command must be a string' });
  if (text.length > MAX_COMMAND_LENGTH) throw new IbpError('IBP_ERR_CMD_SYNTAX', { detail: `it is longer than ${MAX_COMMAND_LENGTH} characters` });
  for (const [re, why] of REFUSED) {
    const m = re.exec(text);
    if (m) throw new IbpError('IBP_ERR_CMD_SYNTAX', { detail: `${why} (at offset ${m.index})` });
  }
  const argv = text.split(' ').filter((s) => s.length > 0);
  if (argv.length === 0) throw new IbpError('IBP_ERR_CMD_SYNTAX', { detail: 'it is empty' });
  return { argv, line: argv.join(' ') };
}

export interface CompiledPattern {
  pattern: string;
  re: RegExp;
}

/** Compile one `*`/`?` pattern into an anchored regular expression. */
export function compilePattern(pattern: string): CompiledPattern {
  const norm = pattern.trim().split(/ +/).join(' ');
  let src = '';
  for (const ch of norm) {
    if (ch === '*') src += '[\\s\\S]*';
    else if (ch === '?') src += '[\\s\\S]';
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return { pattern, re: new RegExp(`^${src}$`, 'u') };
}

/** Compile a list; `where` names it in the error for an empty pattern. */
export function compileList(patterns: readonly string[], where: string): CompiledPattern[] {
  return patterns.map((p, i) => {
    if (p.trim().length === 0) throw new IbpError('IBP_ERR_CFG_INVALID', { file: where, key: `[${i}]`, detail: 'is an empty pattern' });
    return compilePattern(p);
  });
}

export function matchPattern(p: CompiledPattern, line: string): boolean {
  return p.re.test(line);
}

/** A black or white list entry as ibcmd.conf holds it. */
export type ListEntry = string | { program: string; args?: string[] };

type ArgPattern = { kind: 'glob'; re: RegExp } | { kind: 'sandbox' };

export interface CompiledEntry {
  /** The entry as written (JSON), for messages. */
  source: string;
  /** A named program: as written, and the real path it resolved to at start (undefined: nothing). */
  program?: { name: string; real: string | undefined };
  /** String entries: the whole-line pattern. */
  line?: CompiledPattern;
  /** Object entries with `args`: one pattern per argument. */
  args?: ArgPattern[];
  /** The last pattern repeats (`...`). */
  repeatLast?: boolean;
}

export interface Policy {
  black: readonly CompiledEntry[];
  white: readonly CompiledEntry[];
  resolver: ProgramResolver;
  /** Real path of the sandbox, for `<sandbox-path>`. */
  sandbox: string;
  /** White entries naming a program that resolves to nothing (inert until a restart finds it). */
  warnings: string[];
}

const GLOB = /[*?]/;
export const SANDBOX_PATH = '<sandbox-path>';
export const REPEAT = '...';

function argPattern(p: string): ArgPattern {
  if (p === SANDBOX_PATH) return { kind: 'sandbox' };
  let src = '';
  for (const ch of p) src += ch === '*' ? '[\\s\\S]*' : ch === '?' ? '[\\s\\S]' : ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return { kind: 'glob', re: new RegExp(`^${src}$`, 'u') };
}

function compileEntry(e: ListEntry, where: string, i: number, resolver: ProgramResolver): CompiledEntry {
  const bad = (detail: string): never => {
    throw new IbpError('IBP_ERR_CFG_INVALID', { file: where, key: `[${i}]`, detail });
  };
  if (typeof e === 'string') {
    if (e.trim().length === 0) bad('is an empty pattern');
    const line = compilePattern(e);
    const prog = e.trim().split(/ +/)[0]!;
    return GLOB.test(prog) ? { source: JSON.stringify(e), line } : { source: JSON.stringify(e), line, program: { name: prog, real: resolver.resolve(prog) } };
  }
  if (GLOB.test(e.program) || e.program.trim() !== e.program || e.program.includes(' ')) bad('program must name one program (no spaces, no * or ?)');
  const out: CompiledEntry = { source: JSON.stringify(e), program: { name: e.program, real: resolver.resolve(e.program) } };
  if (e.args) {
    const args = [...e.args];
    if (args.indexOf(REPEAT) >= 0 && args.indexOf(REPEAT) !== args.length - 1) bad(`"${REPEAT}" may only be the last argument pattern`);
    if (args[args.length - 1] === REPEAT) {
      if (args.length < 2) bad(`"${REPEAT}" repeats the pattern before it: give one`);
      args.pop();
      out.repeatLast = true;
    }
    out.args = args.map(argPattern);
  }
  return out;
}

/** Compile the lists; programs are resolved now, against `resolver`'s PATH. */
export function compilePolicy(black: readonly ListEntry[], white: readonly ListEntry[], resolver: ProgramResolver, sandbox = resolver.cwd): Policy {
  const b = black.map((e, i) => compileEntry(e, 'black_list', i, resolver));
  const w = white.map((e, i) => compileEntry(e, 'white_list', i, resolver));
  const warnings = w.filter((e) => e.program && e.program.real === undefined).map((e) => `white_list entry ${e.source}: ${e.program!.name} is not on the agent's command PATH, so the entry allows nothing`);
  let real = sandbox;
  try {
    real = fs.realpathSync(sandbox);
  } catch {
    // created at start
  }
  return { black: b, white: w, resolver, sandbox: real, warnings };
}

/** Whether an argument is a relative path that stays inside the sandbox. */
export function inSandbox(arg: string, sandbox: string): boolean {
  if (arg.length === 0 || path.isAbsolute(arg) || arg.split('/').includes('..')) return false;
  const full = path.resolve(sandbox, arg);
  if (full !== sandbox && !full.startsWith(`${sandbox}/`)) return false;
  try {
    const real = fs.realpathSync(full);
    return real === sandbox || real.startsWith(`${sandbox}/`);
  } catch {
    return true; // does not exist (yet): the command will say so
  }
}

function argsMatch(e: CompiledEntry, args: readonly string[], sandbox: string): boolean {
  const pats = e.args;
  if (!pats) return true;
  if (args.length < pats.length || (!e.repeatLast && args.length !== pats.length)) return false;
  if (pats.length === 0) return args.length === 0;
  return args.every((a, i) => {
    const p = pats[Math.min(i, pats.length - 1)]!;
    return p.kind === 'sandbox' ? inSandbox(a, sandbox) : p.re.test(a);
  });
}

/** The line an entry matched, for messages; undefined when it does not match. */
function matchEntry(e: CompiledEntry, cmd: { argv: string[]; line: string; real: string }, black: boolean, sandbox: string): string | undefined {
  const args = cmd.argv.slice(1);
  if (e.program) {
    const p = e.program;
    const base = path.posix.basename(p.name);
    const same = p.real !== undefined && p.real === cmd.real;
    const sameName = black && (path.posix.basename(cmd.real) === base || path.posix.basename(cmd.argv[0]!) === base);
    if (!same && !sameName) return undefined;
    if (e.line) {
      const shown = [p.name, ...args].join(' ');
      return matchPattern(e.line, shown) ? shown : undefined;
    }
    return argsMatch(e, args, sandbox) ? [p.name, ...args].join(' ') : undefined;
  }
  const variants = black
    ? [cmd.line, [cmd.real, ...args].join(' '), [path.posix.basename(cmd.real), ...args].join(' '), [path.posix.basename(cmd.argv[0]!), ...args].join(' ')]
    : [[cmd.real, ...args].join(' ')];
  return variants.find((v) => matchPattern(e.line!, v));
}

/** Steps 1–4: the argv to run and the file that runs, or an IbpError saying which rule refused it. */
export function auditCommand(text: string, policy: Policy): AuditedCommand {
  const cmd = parseCommandLine(text);
  const real = policy.resolver.resolve(cmd.argv[0]!);
  if (real === undefined) throw new IbpError('IBP_ERR_CMD_EXEC', { cmd: cmd.argv[0], detail: 'no such program on the agent\'s PATH' });
  const c = { ...cmd, real };
  for (const e of policy.black) {
    const hit = matchEntry(e, c, true, policy.sandbox);
    if (hit !== undefined) throw new IbpError('IBP_ERR_CMD_DENIED', { detail: `"${hit}" matches black list pattern ${e.source}` });
  }
  if (!policy.white.some((e) => matchEntry(e, c, false, policy.sandbox) !== undefined)) {
    const base = path.posix.basename(real);
    const named = policy.white.find((e) => e.program && path.posix.basename(e.program.name) === path.posix.basename(cmd.argv[0]!) && e.program.real !== real);
    const why = named
      ? ` (it runs ${real}, not ${named.program!.real ?? 'the program'} that white list entry ${named.source} allows)`
      : policy.white.some((e) => e.program?.real === real) ? ` (its arguments match no entry for ${base})` : '';
    throw new IbpError('IBP_ERR_CMD_DENIED', { detail: `"${cmd.line}" matches no white list pattern${why}` });
  }
  return { ...cmd, program: real };
}
