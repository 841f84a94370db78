// ibas/conn-io.ts on real loopback sockets: a connection a worker accepts is a blocking socket
// whose receive timeout (one wait round) comes from the listen socket, so recvWait waits and
// reads in one call and gives up after the round; every other call on it still never blocks
// (recvNow, sendNow with a full window).
import t from 'tap';
import net from 'node:net';
import { AGAIN, POLLIN, acceptNow, closeConn, recvNow, recvTimeoutListen, recvWait, sendNow, waitFd } from '../../ibas/conn-io.js';
import { boundAddress, closeSocket, openListenSocket } from '../../ibas/listen-socket.js';

const ROUND_MS = 50;

async function connected(port: number): Promise<net.Socket> {
  const c = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => c.once('connect', resolve).once('error', reject));
  return c;
}

function accepted(lfd: number): { fd: number; recvRoundMs: number } {
  for (let i = 0; i < 50; i++) {
    if (waitFd(lfd, POLLIN, 100) !== 'ready') continue;
    const c = acceptNow(lfd);
    if (c) return c;
  }
  throw new Error('no connection to accept within 5 s');
}

t.test('recvWait: one blocking round, the bytes, the end; recvNow and sendNow never block', async (t) => {
  const lfd = openListenSocket('127.0.0.1', 0, 16);
  t.teardown(() => closeSocket(lfd));
  const round = recvTimeoutListen(lfd, ROUND_MS);
  // the kernel keeps the timeout in jiffies: what it reports is the round the driver plans with
  t.ok(round >= ROUND_MS && round < ROUND_MS + 20, `receive timeout ${round} ms for ${ROUND_MS} asked`);
  const { port } = boundAddress(lfd)!;
  const client = await connected(port);
  t.teardown(() => client.destroy());
  const { fd, recvRoundMs } = accepted(lfd);
  t.equal(recvRoundMs, round, 'the accepted connection has the listen socket\'s round');
  const buf = Buffer.alloc(4096);

  t.equal(recvNow(fd, buf), AGAIN, 'recvNow on the blocking socket: nothing yet, at once');
  const began = Date.now();
  t.equal(recvWait(fd, buf), AGAIN, 'recvWait with nothing sent: the round passes');
  t.ok(Date.now() - began >= ROUND_MS - 5, 'it waited about a round (blocking, not a busy return)');

  await new Promise<void>((resolve) => client.write('hello', () => resolve()));
  const n = recvWait(fd, buf);
  t.equal(buf.toString('latin1', 0, n), 'hello', 'recvWait returns the bytes that came');

  // the client reads nothing: the window fills and sendNow reports it instead of blocking
  client.pause();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let full = false;
  for (let i = 0; i < 2000 && !full; i++) full = sendNow(fd, chunk) === 0;
  t.ok(full, 'sendNow returns 0 once the peer\'s window is full (MSG_DONTWAIT on a blocking socket)');

  // FIN only (a destroy with unread bytes would be a reset)
  await new Promise<void>((resolve) => client.end(resolve));
  let end = -99;
  for (let i = 0; i < 100 && end !== 0; i++) end = recvWait(fd, buf);
  t.equal(end, 0, 'the peer\'s end reads as 0');
  closeConn(fd, false);
});

t.test('a listen socket whose round is 0 (none) hands out connections the driver must poll', async (t) => {
  const lfd = openListenSocket('127.0.0.1', 0, 16);
  t.teardown(() => closeSocket(lfd));
  t.equal(recvTimeoutListen(lfd, 0), 0, 'no receive timeout on the listen socket');
  const client = await connected(boundAddress(lfd)!.port);
  t.teardown(() => client.destroy());
  const { fd, recvRoundMs } = accepted(lfd);
  t.equal(recvRoundMs, 0, 'no receive round: recvWait would block without a deadline, so the driver polls');
  closeConn(fd, true);
});
