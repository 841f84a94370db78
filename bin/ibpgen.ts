/**
 * ibpgen, the code generator of IBP-TS.
 *
 *   ibpgen messages FILE.dsc --lang ts|c --out DIR [--call APP=REQ:RSP …]   (bin/ibpgen-messages.ts)
 */
import { createProgram, runCli } from '../lib/cli.js';
import { addMessagesCommand } from './ibpgen-messages.js';

const program = createProgram('ibpgen', 'IBP-TS code generator');
addMessagesCommand(program);
await runCli(program);
