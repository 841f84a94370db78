// The scoreboard's suspended-apps table (ibas/scoreboard.ts, written by the crash-loop brake):
// suspend / read / resume through two attachments (manager and worker / CLI), a full table, and
// docs/ARCHITECTURE.md §7.4 in step with the layout constants.
import t from 'tap';
import fs from 'node:fs';
import { Scoreboard, SB_HEADER, SB_SLOT, SB_SUSPEND_ENTRY, SB_SUSPEND_MAX, SB_VERSION, scoreboardBytes } from '../../ibas/scoreboard.js';
import { destroySegment } from '../../lib/shm/sysv.js';

const KEY = 0x5a000000 + (process.pid & 0xffff);

t.test('suspend, read from another attachment, resume', async (t) => {
  const sb = Scoreboard.create(KEY, 4, 'STATIC_WORKERPOOL', 1);
  t.teardown(() => {
    try { sb.destroy(); } catch { destroySegment(KEY); }
  });
  t.equal(sb.seg.buf.length >= scoreboardBytes(4), true, 'the segment holds the table');
  const other = Scoreboard.attach(KEY)!;
  t.teardown(() => other.detach());
  const v = { app: 'crashy', bin: 'crashy.so', crashes: 5, windowS: 60, since: Date.now(), size: 1234, mtimeMs: 1.5e12, ino: 42 };
  t.equal(other.suspension('crashy'), undefined, 'nothing suspended at first');
  t.ok(sb.suspend(v), 'suspended');
  t.notOk(sb.suspend(v), 'not twice');
  t.same(other.suspension('crashy'), v, 'the other attachment reads every field');
  t.equal(other.suspension('crash'), undefined, 'an app name prefix does not match');
  t.same(other.suspensions().map((x) => x.app), ['crashy']);
  t.ok(other.resume('crashy'), 'resumed from the other attachment (the CLI)');
  t.notOk(other.resume('crashy'), 'resuming twice fails');
  t.equal(sb.suspension('crashy'), undefined, 'the manager sees it gone');
  for (let i = 0; i < SB_SUSPEND_MAX; i++) t.ok(sb.suspend({ ...v, app: `a${i}` }), `entry ${i}`);
  t.notOk(sb.suspend({ ...v, app: 'one_too_many' }), 'a full table refuses');
  t.equal(other.suspensions().length, SB_SUSPEND_MAX);
  const slot = sb.read(3);
  t.equal(slot.state, 'DEAD', 'the table does not overlap the last slot');
});

t.test('docs/ARCHITECTURE.md §7.4 matches the layout', async (t) => {
  const doc = fs.readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  t.match(doc, new RegExp(`### 7\\.4 Scoreboard \\(SysV, key base\\+1, ${SB_HEADER} \\+ slots × ${SB_SLOT} \\+ ${SB_SUSPEND_MAX} × ${SB_SUSPEND_ENTRY} bytes\\)`), 'the size in the heading');
  t.match(doc, new RegExp(`layout version ${SB_VERSION},`), 'the layout version');
  t.match(doc, new RegExp(`\\| suspended app j \\| ${SB_HEADER} \\+ slots × ${SB_SLOT} \\+ j × ${SB_SUSPEND_ENTRY} \\| ${SB_SUSPEND_ENTRY} \\(${SB_SUSPEND_MAX} entries\\)`), 'the table region');
  const src = fs.readFileSync(new URL('../../ibas/scoreboard.ts', import.meta.url), 'utf8');
  t.match(src, new RegExp(`@4  i32 layout version \\(${SB_VERSION}\\)`), 'the source header comment names the version');
});
