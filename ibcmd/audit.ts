/**
 * The command-line audit of ibcmd: what may run. In this order:
 *
 *   1. syntax   the line is split on spaces into argv; there is no shell, so anything a shell
 *               would interpret is refused rather than passed on literally: separators and
 *               redirections (; | & > <), substitutions ($ ` ( )), quotes and escapes (' " \),
 *               globs and expansions (* ? [ ] { } ~ !), comments (#) and control characters
 *               (newline, CR, tab, NUL …).
 *   2. black    the normalised line (argv joined by single spaces) must match NO black-list
 *               pattern; nor may the line with the program reduced to its base name
 *               (`/bin/rm -rf x` is checked as `rm -rf x` too).
 *   3. white    the normalised line must match at least one white-list pattern.
 *
 * Patterns cover the whole line: `*` is any run of characters (spaces included), `?` one
 * character, everything else literal; runs of spaces in a pattern count as one space. Because `*`
 * crosses spaces, `cat /dir/*` also allows `cat /dir/a /etc/passwd`: keep white-list patterns
 * tight.
 */
import path from 'node:path';
import { IbpError } from '../lib/errors.js';

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
  /** The argv to execFile: argv[0] is the program. */
  argv: string[];
  /** argv joined by single spaces: what the lists were matched against and what is logged. */
  line: string;
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

export interface Policy {
  black: readonly CompiledPattern[];
  white: readonly CompiledPattern[];
}

export function compilePolicy(black: readonly string[], white: readonly string[]): Policy {
  return { black: compileList(black, 'black_list'), white: compileList(white, 'white_list') };
}

/** Steps 1–3: the argv to run, or an IbpError saying which rule refused it. */
export function auditCommand(text: string, policy: Policy): AuditedCommand {
  const cmd = parseCommandLine(text);
  const variants = [cmd.line];
  const base = path.posix.basename(cmd.argv[0]!);
  if (base !== cmd.argv[0] && base.length > 0) variants.push([base, ...cmd.argv.slice(1)].join(' '));
  for (const p of policy.black) {
    const hit = variants.find((v) => matchPattern(p, v));
    if (hit !== undefined) throw new IbpError('IBP_ERR_CMD_DENIED', { detail: `"${hit}" matches black list pattern "${p.pattern}"` });
  }
  if (!policy.white.some((p) => matchPattern(p, cmd.line))) {
    throw new IbpError('IBP_ERR_CMD_DENIED', { detail: `"${cmd.line}" matches no white list pattern` });
  }
  return cmd;
}
