'use strict';
// Copied from the bench anchors (bench-anchors/node/) for `npm run bench:ibas`: the bare Node baseline ibas is set against.
// Bare Node.js baseline (a): `net` echo server under `cluster` with N workers.
// Framing = tcpdaemon's "tdhb" echo: 4-digit zero-padded decimal length header
// + body; every complete frame is echoed back ("business function" = echo).
// Env: PORT (19529), HOST (127.0.0.1), WORKERS (2),
//      NODE_CLUSTER_SCHED_POLICY = rr (Node's Linux default: the primary accepts
//      and hands sockets to workers over IPC) | none (workers share the listen
//      socket and the kernel picks who accepts: closest to pre-fork LF).
// Prints "READY ..." once every worker is listening.  SIGTERM/SIGINT stop all.
const cluster = require('node:cluster');
const net = require('node:net');

const PORT = Number(process.env.PORT || 19529);
const HOST = process.env.HOST || '127.0.0.1';
const WORKERS = Number(process.env.WORKERS || 2);

if (cluster.isPrimary) {
  const policy = cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
  let listening = 0;
  let stopping = false;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('listening', () => {
    if (++listening === WORKERS) {
      console.log(`READY net-echo-cluster pid=${process.pid} workers=${WORKERS} policy=${policy} port=${PORT}`);
    }
  });
  cluster.on('exit', (w, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers).length === 0) process.exit(0);
      return;
    }
    console.error(`worker ${w.process.pid} exited (${code ?? signal}), re-forking`);
    cluster.fork();
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const server = net.createServer({ noDelay: true }, (sock) => {
    let buf = null;
    sock.on('data', (chunk) => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
      while (buf !== null && buf.length >= 4) {
        const len = Number(buf.toString('latin1', 0, 4));
        if (!Number.isInteger(len) || len < 0) {
          sock.destroy();
          return;
        }
        if (buf.length < 4 + len) break;
        // business function: echo the whole frame
        sock.write(buf.subarray(0, 4 + len));
        buf = buf.length > 4 + len ? buf.subarray(4 + len) : null;
      }
    });
    sock.on('error', () => {});
  });
  server.listen(PORT, HOST);
}
