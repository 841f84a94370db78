// The ibas command line: usage with no arguments, init (idempotent, validated), check, bad
// arguments naming themselves, a second start refused, shows of a stopped server.
import t from 'tap';
import fs from 'node:fs';
import { runTool } from '../helpers/procs.js';
import { setupIbas } from './helpers/server.js';

t.test('usage and bad arguments', async (t) => {
  const none = await runTool('ibas', []);
  t.equal(none.code, 2, 'no arguments: exit 2');
  t.match(none.stderr, /-a, --action <action>/, 'prints the usage');
  const bad = await runTool('ibas', ['-a', 'explode']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /explode/, 'names the bad value');
  const both = await runTool('ibas', ['-a', 'check', '-s', 'status']);
  t.equal(both.code, 2);
  const home = t.testdir();
  const noPort = await runTool('ibas', ['-a', 'init', '--ip', '127.0.0.1'], { home });
  t.equal(noPort.code, 2);
  t.match(noPort.stderr, /--port/, 'names the missing option');
  const badIp = await runTool('ibas', ['-a', 'init', '--ip', '999.1.1.1', '--port', '1234'], { home });
  t.equal(badIp.code, 3);
  t.match(badIp.stderr, /key \/server\/ip must be an IPv4 address/, 'a bad IP is refused naming the key');
  const noConf = await runTool('ibas', ['-a', 'check'], { home });
  t.equal(noConf.code, 3);
  t.match(noConf.stderr, /run `ibas -a init` first/);
});

t.test('init, check, double start', async (t) => {
  const s = await setupIbas(t, { maxCount: 1 });
  const again = await s.ibas(['-a', 'init', '--ip', s.ip, '--port', String(s.port)]);
  t.equal(again.code, 0);
  t.match(again.stdout, /WARN : .*ibas\.conf exist !/, 'init is idempotent');
  const check = await s.ibas(['-f', s.conf, '-a', 'check']);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /ibas\.conf: ok \(listen .* mode STATIC_WORKERPOOL, max_count 1\)/);
  t.match(check.stdout, /ibma\.conf: ok \(node ibas_test_node/);

  const text = fs.readFileSync(s.conf, 'utf8');
  fs.writeFileSync(s.conf, text.replace('"max_count": 1', '"max_count": 0'));
  const invalid = await s.ibas(['-f', s.conf, '-a', 'check']);
  t.equal(invalid.code, 3);
  t.match(invalid.stderr, /key \/mpm\/max_count must be >= 1/, 'check names the bad key');
  fs.writeFileSync(s.conf, text);

  const st = await s.ibas(['-f', s.conf, '-s', 'bbstat', '--json']);
  t.equal(st.code, 7);
  t.same(JSON.parse(st.stdout).running, false);

  await s.start();
  const second = await s.ibas(['-f', s.conf, '-a', 'start']);
  t.equal(second.code, 7, 'a second start is refused');
  t.match(second.stderr, /ibas is already running with pid \d+/);
  t.equal((await s.stop()).code, 0);
});

t.test('a port already taken: start fails with a clear message', async (t) => {
  const s = await setupIbas(t, { maxCount: 1 });
  const net = await import('node:net');
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(s.port, s.ip, () => r()));
  t.teardown(() => blocker.close());
  const r = await s.ibas(['-f', s.conf, '-a', 'start']);
  t.equal(r.code, 7);
  t.match(r.stderr, /IBP_ERR_NET_SYSCALL.*bind .*EADDRINUSE/, 'names the bind failure as a socket error');
  t.match(r.stderr, /change server\.port in ibas\.conf/, 'and says what to do');
});
