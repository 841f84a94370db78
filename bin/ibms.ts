/**
 * ibms, the registry (IBP's 注册中心): `ibms [-f ibms.conf] -a <action> | -s <what>`.
 * Run with no arguments for the usage; docs/ibms.md is the guide.
 */
import { main } from '../ibms/cli.js';

await main(process.argv);
