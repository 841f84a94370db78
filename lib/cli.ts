/**
 * What every IBP-TS command line shares: commander set up so that a bad argument exits 2 with a
 * message naming it, IbpErrors printed as `tool: message (CODE)` with their exit code, and output
 * either as a table for people or as JSON for scripts (`--json`).
 */
import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import Table from 'cli-table3';
import { IbpError } from './errors.js';
import { EXIT } from './exit-codes.js';

/** The package's version (package.json at the root, two levels above dist/lib or lib). */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ibp-ts' && pkg.version) return pkg.version;
    } catch {
      // try the next
    }
  }
  return 'unknown';
}

/**
 * Output piped into a reader that stops early (`ibas -s status | head -1`): the next write fails
 * with EPIPE, an 'error' event that would end the process with a stack trace. The rest of the
 * output goes nowhere and the command finishes as it would have (its exit code unchanged), like
 * the Unix tools; any other stdout error still throws.
 */
const quieted = new WeakSet<NodeJS.WriteStream>();
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  if (quieted.has(stream)) return;
  quieted.add(stream);
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
}

/** A commander program with IBP's exit behaviour; usage is printed when run with no arguments. */
export function createProgram(name: string, description: string): Command {
  quietOnClosedPipe(process.stdout);
  const program = new Command(name);
  program
    .description(description)
    .version(`${name} (ibp-ts) ${packageVersion()} node ${process.version}`, '-V, --version', 'print the version and exit')
    .showHelpAfterError(`(run \`${name} --help\` for usage)`)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`${name}: ${str.replace(/^error: /, '')}`) });
  return program;
}

/**
 * Run a command-line main: parse argv, run, map failures to exit codes. With no arguments at all
 * the usage is printed and the exit code is 2.
 */
export async function runCli(program: Command, argv = process.argv): Promise<void> {
  if (argv.length <= 2) {
    program.outputHelp({ error: true }); // with the text added by addHelpText
    process.exitCode = EXIT.USAGE;
    return;
  }
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT.OK : EXIT.USAGE;
      return;
    }
    failCli(program.name(), e);
  }
}

/** Print a failure the IBP way and set the exit code. */
export function failCli(tool: string, e: unknown): void {
  if (e instanceof IbpError) {
    if (e.code === 'IBP_ERR_CFG_EXISTS') {
      process.stdout.write(`WARN : ${e.message}\n`);
      process.exitCode = EXIT.OK;
      return;
    }
    process.stderr.write(`${tool}: ${e.message} (${e.code})\n`);
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`${tool}: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = EXIT.FAILURE;
  }
}

/** The value of an option `action` cannot go without (`-a init` needs --ip): a usage error when missing. */
export function neededBy(action: string, name: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new IbpError('IBP_ERR_CLI_USAGE', { detail: `${action} needs ${name} (see --help)` });
  return v;
}

/** A usage error naming the argument. */
export function badArg(arg: string, detail: string): IbpError {
  return new IbpError('IBP_ERR_CLI_BAD_ARG', { arg, detail });
}

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | undefined;
}

/** Print rows as a table, or as JSON when `json` is set. */
export function printRows<T>(rows: readonly T[], columns: readonly Column<T>[], json: boolean, out: (s: string) => void = (s) => process.stdout.write(s)): void {
  if (json) {
    out(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const table = new Table({ head: columns.map((c) => c.header), style: { head: [], border: [] } });
  for (const r of rows) table.push(columns.map((c) => String(c.value(r) ?? '')));
  out(`${table.toString()}\n`);
}

/** Parse an integer option; throws a usage error naming it. */
export function intArg(name: string, value: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^-?\d+$/.test(value)) throw badArg(name, `"${value}" is not an integer`);
  const n = Number(value);
  if (n < min || n > max) throw badArg(name, `${n} is not within ${min}..${max}`);
  return n;
}

/** Split a list option: "N1 N2" or "N1,N2". */
export function listArg(value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).filter((s) => s.length > 0);
}
