/**
 * ibpgen, the app author's generator. Each subcommand lives in its own module under ibpgen/ and
 * registers itself on the program (ibpgen/commands.ts lists them):
 *
 *   ibpgen new-app NAME [--lang ts|c] [--dir DIR] [--ibp-ts SPEC]   a buildable app with a test
 *   ibpgen messages FILE.dsc --lang ts|c --out DIR [--call APP=REQ:RSP …]   code of declared messages
 */
import { createProgram, failCli, runCli } from '../lib/cli.js';
import { COMMANDS } from '../ibpgen/commands.js';

const program = createProgram('ibpgen', 'IBP-TS generators for app authors (scaffolds, …)');
for (const register of COMMANDS) register(program);

runCli(program).catch((e) => failCli('ibpgen', e));
