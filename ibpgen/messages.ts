/**
 * The `messages` subcommand of ibpgen (IBP's `dsc` step, for TS and C apps):
 *
 *   ibpgen messages FILE.dsc --lang ts|c --out DIR [--call APP=REQ:RSP …]
 *
 * Exit 0 ok; 2 bad arguments or a bad declaration (IBP_ERR_MSG_DECL names file and line).
 */
import { Option, type Command } from 'commander';
import { badArg } from '../lib/cli.js';
import { GEN_LANGS, generateMessages, parseCallSpec, type GenLang } from '../lib/appfw/msgv/generate.js';
import type { CallSpec } from '../lib/appfw/msgv/gen-ts.js';

interface MessagesOpts {
  lang: GenLang;
  out: string;
  call: string[];
  runtime?: string;
  ibac?: string;
}

export function registerMessages(program: Command): void {
  program
    .command('messages')
    .description('generate TS or C code (types, validating JSON/XML pack/unpack, ibac client stubs) from a DirectStruct .dsc message declaration')
    .argument('<file>', 'the .dsc file')
    .addOption(new Option('--lang <lang>', 'language of the generated code').choices([...GEN_LANGS]).makeOptionMandatory())
    .requiredOption('--out <dir>', 'folder to write into (created if missing)')
    .option('--call <APP=REQ:RSP>', 'TS: a typed client stub for app APP taking message REQ and answering RSP (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--runtime <specifier>', 'TS: module prefix of the msgv runtime', undefined)
    .option('--ibac <specifier>', 'TS: module specifier of ibac', undefined)
    .action((file: string, o: MessagesOpts) => {
      const calls: CallSpec[] = o.call.map((c) => parseCallSpec(c) ?? (() => { throw badArg('--call', `"${c}" is not APP=REQ:RSP`); })());
      if (o.lang === 'c' && calls.length > 0) throw badArg('--call', 'client stubs are generated for --lang ts only');
      const written = generateMessages(file, { lang: o.lang, out: o.out, calls, ...(o.runtime ? { runtimeBase: o.runtime } : {}), ...(o.ibac ? { ibacModule: o.ibac } : {}) });
      for (const f of written) process.stdout.write(`${f}\n`);
    });
}
