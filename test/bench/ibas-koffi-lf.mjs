// ibas-koffi-lf.mjs - the bench's Node floor of the pre-fork model: test/bench/ibas-c-lf-echo.c
// written again in Node, its whole per-connection path synchronous koffi calls to libc (the
// experiment of issue 9 / BRIEF §5), and the echo through the app itself: somain of
// ibp_test_echo.so through the host helper (ibas/app-abi.ts HostCall, one crossing, as ibas calls
// it). Set beside ibas and c-lf in one run it splits ibas's gap to C in two: what Node and koffi
// cost (koffi-lf − c-lf) and what ibas's own per-transaction work costs (ibas − koffi-lf:
// protocol session, app lookup and cache, scoreboard, tier-1 guard, deadlines, log line).
//
//   manager   socket/bind/listen (blocking, like c-lf), a SysV semaphore as the accept lock,
//             spawn W Node workers with the listen socket as their fd 3, print "READY <pids>" once
//             each worker has written "up" (it is about to accept);
//             SIGTERM/SIGINT: SIGKILL the workers (as c-lf does), reap, remove the semaphore, exit.
//   worker    loop: semop lock → accept4 → semop unlock → TCP_NODELAY → serve until the peer
//             closes: recv, cut 12-byte-header frames, PRE_ANSWER for a PRE_REQUEST, RESPONSE with
//             somain's answer for a REQUEST (KEEPALIVE → KEEPALIVE_ACK, PUSH_FILE dropped), the
//             answers of one recv in one send. Anything malformed closes. It dies with its manager
//             (PR_SET_PDEATHSIG) and never returns to its event loop.
//
// usage: node ibas-koffi-lf.mjs IP PORT [WORKERS=2]   (needs `npm run build`: dist/ and build/)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const libc = koffi.load('libc.so.6');
const f = (sig) => libc.func(sig);
const socket = f('int socket(int, int, int)');
const setsockopt = f('int setsockopt(int, int, int, void *, unsigned int)');
const bind = f('int bind(int, void *, unsigned int)');
const listen = f('int listen(int, int)');
const semget = f('int semget(int, int, int)');
const semctl = f('int semctl(int, int, int, ...)');
const semop = f('int semop(int, void *, unsigned long)');
const accept4 = f('int accept4(int, void *, void *, int)');
const recv = f('long recv(int, void *, unsigned long, int)');
const send = f('long send(int, const void *, unsigned long, int)');
const close = f('int close(int)');
const prctl = f('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)');

const [IP = '127.0.0.1', PORT = '0', W = '2'] = process.argv.slice(2);
const WORKERS = Math.min(64, Math.max(1, Number(W) || 2));
const SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000, SOL_SOCKET = 1, SO_REUSEADDR = 2, IPPROTO_TCP = 6, TCP_NODELAY = 1;
const SETVAL = 16, IPC_RMID = 0, SEM_UNDO = 0x1000, MSG_NOSIGNAL = 0x4000, PR_SET_PDEATHSIG = 1, SIGKILL = 9;
const one = Buffer.from([1, 0, 0, 0]);

if (process.env.KOFFI_LF_SEM === undefined) manager();
else worker(Number(process.env.KOFFI_LF_SEM));

function manager() {
  const lfd = socket(2, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, one, 4);
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(2, 0);
  sa.writeUInt16BE(Number(PORT), 2);
  IP.split('.').forEach((b, i) => (sa[4 + i] = Number(b)));
  if (lfd < 0 || bind(lfd, sa, 16) !== 0 || listen(lfd, 1024) !== 0) throw new Error(`listen ${IP}:${PORT} failed (errno ${koffi.errno()})`);
  const sem = semget(0, 1, 0o600 | 0o1000);
  if (sem < 0 || semctl(sem, 0, SETVAL, 'int', 1) !== 0) throw new Error(`semget failed (errno ${koffi.errno()})`);
  const kids = [];
  for (let i = 0; i < WORKERS; i++) {
    kids.push(spawn(process.execPath, [fileURLToPath(import.meta.url), IP, PORT, String(WORKERS)], {
      stdio: ['ignore', 'pipe', 'inherit', lfd],
      env: { ...process.env, KOFFI_LF_SEM: String(sem) },
    }));
  }
  let gone = 0;
  const exited = new Promise((resolve) => kids.forEach((k) => k.once('exit', () => ++gone === kids.length && resolve())));
  // READY once every worker said "up" (written just before its accept loop, which never returns)
  let ready = 0;
  for (const k of kids) {
    k.stdout.once('data', () => {
      if (++ready === kids.length) console.log(`READY ${kids.map((c) => c.pid).join(' ')}`);
    });
  }
  const stop = async () => {
    for (const k of kids) k.kill('SIGKILL');
    await exited;
    semctl(sem, 0, IPC_RMID, 'int', 0);
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function worker(sem) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  const { HostCall, PHASE } = await import(path.join(ROOT, 'dist/ibas/app-abi.js'));
  const app = koffi.load(path.join(ROOT, 'build/apps/ibp_test_echo.so'));
  const somain = app.symbol('somain');
  const host = new HostCall();
  const input = { phase: PHASE.MAIN, clientPort: 0, workerIndex: 0, timeoutMs: 5000, timeout2Ms: 0, fileDir: '', thisNode: 'BENCH', app: 'ibp_test_echo', clientNode: '', clientIp: '', journal: '', gtrid: '' };
  const lock = Buffer.alloc(6);
  lock.writeUInt16LE(0, 0);
  lock.writeInt16LE(-1, 2);
  lock.writeInt16LE(SEM_UNDO, 4);
  const unlock = Buffer.from(lock);
  unlock.writeInt16LE(1, 2);
  const inBuf = Buffer.allocUnsafe(1 << 16);
  fs.writeSync(1, 'up\n'); // synchronous: the loop below never gives the event loop a turn
  for (;;) {
    if (semop(sem, lock, 1) !== 0) continue;
    const fd = accept4(3, null, null, SOCK_CLOEXEC);
    semop(sem, unlock, 1);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
    serve(fd, inBuf, host, somain, input);
    close(fd);
  }
}

/** One connection: what c-lf's serve() and answer() do, the echo by somain. */
function serve(fd, inBuf, host, somain, input) {
  let have = 0;
  let inTx = false;
  for (;;) {
    const k = recv(fd, have === 0 ? inBuf : inBuf.subarray(have), inBuf.length - have, 0);
    if (k <= 0) return;
    have += k;
    const out = [];
    let at = 0;
    while (have - at >= 12) {
      const len = inBuf.readUInt32BE(at + 8);
      if (inBuf[at] !== 0x49 || inBuf[at + 1] !== 0x42 || inBuf[at + 2] !== 1 || inBuf[at + 4] !== 0 || len > inBuf.length - 12) return;
      if (have - at < 12 + len) break;
      const type = inBuf[at + 3];
      if (type === 0x01) { // PRE_REQUEST → PRE_ANSWER rc 0, load, nothing granted
        if (inTx) return;
        inTx = true;
        const b = frame(0x02, 10);
        b.writeUInt16BE(1, 16);
        b.writeUInt16BE(WORKERS, 18);
        out.push(b);
      } else if (type === 0x03) { // PUSH_FILE: dropped
        if (!inTx) return;
      } else if (type === 0x04) { // REQUEST → RESPONSE with somain's answer
        if (!inTx) return;
        inTx = false;
        const r = host.call(somain, input, inBuf.subarray(at + 12, at + 12 + len), []);
        const b = frame(0x06, 24 + r.response.length); // rc 0, app rc, load, no files, app us 0, no message
        b.writeInt32BE(r.rc, 16);
        b.writeUInt16BE(1, 20);
        b.writeUInt16BE(WORKERS, 22);
        b.writeUInt32BE(r.response.length, 32);
        r.response.copy(b, 36);
        out.push(b);
      } else if (type === 0x07) { // KEEPALIVE → KEEPALIVE_ACK
        if (inTx) return;
        const b = frame(0x08, 4);
        b.writeUInt16BE(1, 12);
        b.writeUInt16BE(WORKERS, 14);
        out.push(b);
      } else return;
      at += 12 + len;
    }
    inBuf.copy(inBuf, 0, at, have);
    have -= at;
    if (out.length > 0) {
      const data = out.length === 1 ? out[0] : Buffer.concat(out);
      for (let sent = 0; sent < data.length;) {
        const n = send(fd, data.subarray(sent), data.length - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += n;
      }
    }
  }
}

function frame(type, body) {
  const b = Buffer.alloc(12 + body);
  b[0] = 0x49;
  b[1] = 0x42;
  b[2] = 1;
  b[3] = type;
  b.writeUInt32BE(body, 8);
  return b;
}
