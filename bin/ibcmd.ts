/** ibcmd: the remote-command agent and its client (see ibcmd/cli.ts for the command line). */
import { runCli } from '../lib/cli.js';
import { buildProgram } from '../ibcmd/cli.js';

await runCli(buildProgram());
