/**
 * The ibma command line: usage and bad arguments, `-a init` (idempotent, 0600, index key from the
 * home), `-a check`, status and stop of an agent that is not running.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { homeKeyBase } from '../../lib/shm/keys.js';
import { loopbackIp, reapHome, runTool } from '../helpers/procs.js';
import { OMEGA_CREDENTIAL, omegaFake } from './fake-ibms.js';

const CRED = OMEGA_CREDENTIAL;
const ip = loopbackIp();
const fake = omegaFake(ip);
let root = '';

t.before(async () => {
  root = t.testdir();
  await fake.start();
  t.teardown(() => fake.stop());
});

t.test('usage and bad arguments', async (t) => {
  const home = path.join(root, 'usage');
  t.teardown(() => reapHome(home));
  const run = (args: string[]) => runTool('ibma', args, { home });
  const [none, badAction, noNode, badPort, badIp, noConf] = await Promise.all([
    run([]),
    run(['-a', 'bogus']),
    run(['-a', 'init', '--ibms-ip', ip, '--ibms-port', '1', '--credential', CRED]),
    run(['-a', 'init', '--node', 'X', '--ibms-ip', ip, '--ibms-port', 'abc', '--credential', CRED]),
    run(['-a', 'init', '--node', 'X', '--ibms-ip', '999.1.1.1', '--ibms-port', '1', '--credential', CRED]),
    run(['-s', 'status']),
  ]);
  t.equal(none.code, 2, 'no arguments: usage, exit 2');
  t.match(none.stderr, /Usage: ibma/);
  t.equal(badAction.code, 2);
  t.match(badAction.stderr, /bogus/);
  t.equal(noNode.code, 2);
  t.match(noNode.stderr, /--node/, 'names the missing option');
  t.equal(badPort.code, 2);
  t.match(badPort.stderr, /--ibms-port/);
  t.equal(badIp.code, 3);
  t.match(badIp.stderr, /\/ibms\/ip/, 'names the key');
  t.notOk(fs.existsSync(path.join(home, 'etc', 'ibma.conf')), 'nothing written on a bad argument');
  t.equal(noConf.code, 3);
  t.match(noConf.stderr, /ibma -a init/, 'a missing config says how to make one');
});

t.test('init is idempotent, private, and derives the index key from the home', async (t) => {
  const home = path.join(root, 'init');
  t.teardown(() => reapHome(home));
  const args = ['-a', 'init', '--node', 'OMEGA', '--ibms-ip', ip, '--ibms-port', String(fake.port), '--credential', CRED];
  const first = await runTool('ibma', args, { home });
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /ibma\.conf created/);
  const conf = path.join(home, 'etc', 'ibma.conf');
  t.equal(fs.statSync(conf).mode & 0o777, 0o600, 'ibma.conf holds a credential: 0600');
  const text = fs.readFileSync(conf, 'utf8');
  t.match(text, new RegExp(`"index_key": ${homeKeyBase(home)}\\b`), 'index key = the home\'s key block + 0');
  const again = await runTool('ibma', [...args.slice(0, -1), 'another-credential-0123456789'], { home });
  t.equal(again.code, 0);
  t.match(again.stdout, /WARN : .*ibma\.conf exist !/);
  t.equal(fs.readFileSync(conf, 'utf8'), text, 'the existing file is kept');
  const check = await runTool('ibma', ['-a', 'check'], { home });
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /ibma\.conf: ok/);
  fs.writeFileSync(path.join(home, 'etc', 'bad.conf'), text.replace(/"index_key": \d+/, '"index_key": "x"'));
  const bad = await runTool('ibma', ['-f', 'bad.conf', '-a', 'check'], { home });
  t.equal(bad.code, 3);
  t.match(bad.stderr, /bad\.conf: key \/shm\/index_key/);
  const notRunning = await runTool('ibma', ['-s', 'status'], { home });
  t.equal(notRunning.code, 7, 'status of a stopped agent exits 7');
  t.match(notRunning.stdout, /NOT running/);
  const stop = await runTool('ibma', ['-a', 'stop'], { home });
  t.equal(stop.code, 7);
  t.match(stop.stderr, /not running/);
});

