// Attached files both ways: 4 files pushed with the request come back as 4 pulled files
// (ibp_test_file.so echoes each as "<name>.echo"), byte for byte, pipelined or waiting for the
// pre-answer, compressed or not; the worker's file folder is emptied after each transaction.
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { TX_FLAG } from '../../lib/protocol/codec.js';

t.test('file echo, 4 files each way', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, patch: (c) => { c.comm.max_file_size = 1024 * 1024; } });
  await s.start();
  await waitWorkers(s, 2);
  const c = await TestClient.connect(s.ip, s.port);
  t.teardown(() => c.close());
  const variants = [
    { what: 'pipelined', o: {} },
    { what: 'waiting for the pre-answer', o: { waitPre: true } },
    { what: 'compressed both ways', o: { flags: TX_FLAG.COMPRESS, compressMin: 64 } },
  ];
  for (const [round, v] of variants.entries()) {
    const files = [
      { name: 'a.bin', data: crypto.randomBytes(200_000) },
      { name: 'b.txt', data: Buffer.from('IBP file '.repeat(5000)) },
      { name: 'empty', data: Buffer.alloc(0) },
      { name: `d-${round}.dat`, data: crypto.randomBytes(1 + round * 777) },
    ];
    const r = await c.call('ibp_test_file', `with files ${round}`, { ...v.o, files, journal: `F${round}` });
    t.equal(r.rc, 0, `${v.what}: rc 0`);
    t.equal(r.body.toString(), `with files ${round}`, `${v.what}: request bytes echoed`);
    t.same(r.files.map((f) => f.name), files.map((f) => `${f.name}.echo`), `${v.what}: 4 files back, in order, named .echo`);
    for (const [i, f] of r.files.entries()) t.ok(f.data.equals(files[i]!.data), `${v.what}: ${f.name} has the same ${files[i]!.data.length} bytes`);
    if (v.o.flags) t.equal(r.granted & TX_FLAG.COMPRESS, TX_FLAG.COMPRESS, 'compression granted');
  }
  // the worker's folder is empty between transactions
  const served = s.slots().find((w) => w.count > 0)!;
  const dir = path.join(s.home, 'file', `ibas_w${served.index}`);
  t.same(fs.readdirSync(dir), [], 'the worker file folder is emptied after the transaction');

  // refused file input: the same name twice → APP_FILE, the connection goes on
  const dup = await c.call('ibp_test_file', 'dup', { files: [{ name: 'x', data: Buffer.from('1') }, { name: 'x', data: Buffer.from('2') }] });
  t.equal(dup.rc, 1007, 'the same file name twice: rc APP_FILE');
  t.match(dup.message, /the same name twice/);
  t.equal((await c.call('ibp_test_echo', 'after')).body.toString(), 'after', 'the connection still serves');
  t.equal((await s.stop()).code, 0);
});
