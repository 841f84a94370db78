/**
 * docs/app-framework.md keeps up with the code's tables: every function-tree construct, template
 * variant, journal status, receiver code, .dsc type and C return code is named there.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import * as tree from '../../lib/appfw/tm/tree.js';
import { TEMPLATE_VARIANTS, JOURNAL_STATUS } from '../../lib/appfw/ts/template.js';
import { RECEIVER_RC } from '../../lib/appfw/msgv/receiver.js';
import { SCALAR_TYPES } from '../../lib/appfw/msgv/model.js';
import { C_RUNTIME_DIR } from '../../lib/appfw/msgv/generate.js';
import { ROOT } from '../helpers/procs.js';

const doc = fs.readFileSync(path.join(ROOT, 'docs', 'app-framework.md'), 'utf8');

t.test('every construct, variant, status, code and type is documented', async (t) => {
  const constructs = Object.keys(tree).filter((k) => /^[A-Z_]+$/.test(k) && k !== 'TM_THREW');
  t.ok(constructs.length >= 15, 'the constructs are exported');
  for (const c of constructs) t.match(doc, new RegExp(`\\b${c}\\b`), `construct ${c}`);
  for (const v of TEMPLATE_VARIANTS) t.match(doc, `\`${v}\``, `variant ${v}`);
  for (const s of Object.values(JOURNAL_STATUS)) t.match(doc, `\`${s}\``, `journal status ${s}`);
  for (const [k, v] of Object.entries(RECEIVER_RC)) t.match(doc, new RegExp(`RECEIVER_RC\\.${k}\` \\(${v}\\)`), `receiver code ${k}`);
  for (const ty of SCALAR_TYPES) t.match(doc, new RegExp(`\`${ty}[ \`]`), `.dsc type ${ty}`);
  const header = fs.readFileSync(path.join(C_RUNTIME_DIR, 'ibp_msgv.h'), 'utf8');
  for (const m of header.matchAll(/#define (IBP_MSGV_ERR_\w+)\s+\((-\d+)\)/g)) t.match(doc, `${m[1]!.replace('IBP_MSGV_ERR', '')} ${m[2]}`, `C return code ${m[1]}`);
  const tm = fs.readFileSync(path.join(C_RUNTIME_DIR, 'ibp_tm.h'), 'utf8');
  for (const m of tm.matchAll(/#define (IBP_TM_ERR_\w+)\s+\((-\d+)\)/g)) t.match(doc, new RegExp(`${m[1]}\\s+\\(${m[2]}\\)`), `C tm code ${m[1]}`);
  for (const m of tm.matchAll(/^#define (IF_\w+|FUNC\w*|ELSE|ENDIF|RETURN) IBP_TM_/gm)) t.ok(constructs.includes(m[1]!), `C construct ${m[1]} exists in TS too`);
});
