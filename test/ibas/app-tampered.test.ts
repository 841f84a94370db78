// Verified at dlopen (issue 11), against a real ibas with one worker:
//   1. a package swapped between ibma's install and ibas's load (another .so renamed over so/<bin>)
//      is refused with APP_TAMPERED, logged, and the loaded version keeps answering;
//   2. a client sees the typed error (rc APP_TAMPERED) only when no good version was ever loaded;
//   3. once the config space announces the new signed sha256 (ibma's legitimate update: SHA256_NEXT
//      while installing, then SHA256), it loads, with no refusal logged;
//   4. a symlink at so/<bin> is refused (O_NOFOLLOW) and logged; a group-writable so/ stops a start.
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../helpers/procs.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { APPS_DIR, DEFAULT_APPS, NODE, app, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const V1 = path.join(APPS_DIR, 'ibp_test_ver_v1.so');
const V2 = path.join(APPS_DIR, 'ibp_test_ver_v2.so');

t.test('a swapped package is refused at dlopen and the good version keeps serving', async (t) => {
  const signedV1 = { sha256: sha(V1), size: fs.statSync(V1).size };
  const s = await setupIbas(t, {
    maxCount: 1,
    apps: [
      { app: 'ibp_test_ver', bin: 'ibp_test_ver.so', ...signedV1 },
      { app: 'ibp_test_never', bin: 'ibp_test_never.so', ...signedV1 },
      { app: 'ibp_test_link', bin: 'ibp_test_link.so' },
    ],
  });
  const so = path.join(s.home, 'so');
  const bin = path.join(so, 'ibp_test_ver.so');
  fs.copyFileSync(V1, bin);
  fs.copyFileSync(V2, path.join(so, 'ibp_test_never.so')); // wrong bytes from the start
  await s.start();
  await waitWorkers(s, 1);

  const first = await callOnce(s.ip, s.port, 'ibp_test_ver', 'a');
  t.equal(first.rc, RC.OK, first.message);
  t.equal(first.body.toString(), 'v1:a', 'the signed v1 answers');

  const never = await callOnce(s.ip, s.port, 'ibp_test_never', 'b');
  t.equal(never.rc, RC.APP_TAMPERED, 'no good version was ever loaded: the client gets the typed error');
  t.match(never.message, /sha256 .* the signed sha256 of the config space is/);

  // 1. the swap: v2 renamed over v1 after "ibma's install"
  fs.copyFileSync(V2, `${bin}.tmp`);
  fs.renameSync(`${bin}.tmp`, bin);
  await waitFor('the refusal in the worker log', async () => {
    const r = await callOnce(s.ip, s.port, 'ibp_test_ver', 'c');
    t.equal(r.body.toString(), 'v1:c', `v1 keeps answering while the swapped file is there (rc ${r.rc} ${r.message})`);
    return /app package refused , bin\[ibp_test_ver\.so\] reason\[app ibp_test_ver: .* has sha256 /.test(s.log(0)) ? true : undefined;
  }, 20_000);
  for (let i = 0; i < 5; i++) {
    const r = await callOnce(s.ip, s.port, 'ibp_test_ver', `d${i}`);
    t.equal(r.rc, RC.OK);
    t.equal(r.body.toString(), `v1:d${i}`, `call ${i} after the refusal: still v1`);
  }
  t.match(s.log('event'), /app package refused , bin\[ibp_test_ver\.so\]/, 'the refusal is in the event log (error)');
  t.equal((s.log(0).match(/app package refused , bin\[ibp_test_ver\.so\]/g) ?? []).length, 1, 'logged once for one swapped file, not on every call');

  // 3. ibma's legitimate update: first the space announces v2 as being installed (SHA256_NEXT,
  //    accepted besides SHA256), then carries it as the signed sha256
  const publishVer = (version: number, extra: Record<string, string | number>): void => {
    s.writer!.publish({
      epoch: 'test', version, this_node: NODE,
      nodes: [{ node: NODE, invalid: 0, hosts: [{ ip: s.ip, port: s.port }], kvs: {} }],
      apps: [...DEFAULT_APPS, app('ibp_test_ver', 'ibp_test_ver.so', extra)],
    }, { ibms: { ip: s.ip, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 512 });
  };
  publishVer(2, { ...signedV1, sha256_next: sha(V2) });
  await waitFor('v2 answers once it is announced as being installed', async () => {
    const r = await callOnce(s.ip, s.port, 'ibp_test_ver', 'e');
    t.equal(r.rc, RC.OK, r.message);
    return r.body.toString() === 'v2:e' ? true : undefined;
  }, 20_000);
  publishVer(3, { sha256: sha(V2), size: fs.statSync(V2).size });
  await waitFor('the space switch to be seen', async () => {
    const r = await callOnce(s.ip, s.port, 'ibp_test_ver', 'g');
    t.equal(r.body.toString(), 'v2:g', 'v2 keeps answering once its sha256 is the signed one');
    return /config space switched , generation\[3\]/.test(s.log(0)) ? true : undefined;
  }, 20_000);
  t.equal((s.log(0).match(/app package refused , bin\[ibp_test_ver\.so\]/g) ?? []).length, 1, 'the legitimate update logged no refusal');

  // 4a. a symlink at so/<bin>: refused, never followed
  fs.symlinkSync(path.join(so, 'ibp_test_echo.so'), path.join(so, 'ibp_test_link.so'));
  s.writer!.publish({
    epoch: 'test', version: 4, this_node: NODE,
    nodes: [{ node: NODE, invalid: 0, hosts: [{ ip: s.ip, port: s.port }], kvs: {} }],
    apps: [...DEFAULT_APPS, app('ibp_test_link', 'ibp_test_link.so')],
  }, { ibms: { ip: s.ip, port: 1 }, connecting_timeout: 2, retry_connect_timeval: 5, min_compress_size: 512 });
  const linked = await waitFor('the link app is in the space', async () => {
    const r = await callOnce(s.ip, s.port, 'ibp_test_link', 'f');
    return r.rc === RC.APP_UNKNOWN ? undefined : r;
  }, 20_000);
  t.equal(linked.rc, RC.APP_LOAD, 'a symlinked package is not loaded');
  t.match(linked.message, /symbolic link/);
  t.match(s.log(0), /app package refused , file\[.*ibp_test_link\.so\] reason\[.*symbolic link/, 'and the refusal is logged');
  t.notMatch(s.log('monitor'), /signal\[/, 'no worker died');
  t.equal((await s.stop()).code, 0);

  // 4b. so/ writable by the group: ibas refuses to start, saying why
  fs.chmodSync(so, 0o775);
  const r = await s.ibas(['-f', s.conf, '-a', 'start']);
  fs.chmodSync(so, 0o755);
  t.not(r.code, 0, 'the start is refused');
  t.match(r.stderr, /so\/ folder .* refused: its mode 775 lets the group write into it: chmod go-w/);
});
