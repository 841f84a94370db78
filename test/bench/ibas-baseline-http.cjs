'use strict';
// Copied from the bench anchors (bench-anchors/node/) for `npm run bench:ibas`: the bare Node baseline ibas is set against.
// Bare Node.js baseline (b): `http` server under `cluster` with N workers that
// answers every request with 200 and the request body (POST echo).
// Env: PORT (19581), HOST (127.0.0.1), WORKERS (2),
//      NODE_CLUSTER_SCHED_POLICY = rr (default on Linux) | none.
// Prints "READY ..." once every worker is listening.  SIGTERM/SIGINT stop all.
const cluster = require('node:cluster');
const http = require('node:http');

const PORT = Number(process.env.PORT || 19581);
const HOST = process.env.HOST || '127.0.0.1';
const WORKERS = Number(process.env.WORKERS || 2);

if (cluster.isPrimary) {
  const policy = cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
  let listening = 0;
  let stopping = false;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('listening', () => {
    if (++listening === WORKERS) {
      console.log(`READY http-echo-cluster pid=${process.pid} workers=${WORKERS} policy=${policy} port=${PORT}`);
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
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': body.length,
      });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 65000; // long-connection runs must not be cut by the 5 s default
  server.listen(PORT, HOST);
}
