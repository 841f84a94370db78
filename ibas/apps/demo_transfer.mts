/**
 * demo_transfer.mjs (app code demo_transfer): the app framework's example, a transfer between two
 * accounts of a SQLite database, through declared messages, function trees and the normal phased
 * template. The code is lib/appfw/demo/transfer.ts (docs/app-framework.md); this package only
 * re-exports its entry points, imported through the package name so the copy ibas loads finds
 * them wherever it lives (the node needs `ibp-ts` resolvable from its temp folder: see
 * docs/app-framework.md, "Deploying a TS app that uses the framework").
 */
export { init, main, clean } from 'ibp-ts/lib/appfw/demo/transfer.js';
export const abiVersion = 1;
