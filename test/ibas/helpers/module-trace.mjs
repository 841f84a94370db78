// `node --import <this file>` (e.g. through NODE_OPTIONS): every ES module the process resolves —
// its own, its packages', Node's builtins — is appended as one URL per line to
// $MODULE_TRACE_DIR/<pid>.txt, by the hooks of ./module-trace-hooks.mjs (run on Node's loader
// thread). test/ibas/worker-modules.test.ts reads what a real worker loaded.
import { register } from 'node:module';

if (process.env.MODULE_TRACE_DIR) register(new URL('./module-trace-hooks.mjs', import.meta.url));
