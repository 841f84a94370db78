/**
 * The agent's process life cycle: a wrong credential fails the start; start/stop (space kept),
 * start_cleanly (fresh space), SIGUSR1/SIGHUP (still running), SIGUSR2 (space removed); a start
 * while the registry is down with no cached config returns after retrying, then catches up when
 * the registry appears.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { freePort, isAlive, loopbackIp, segmentsOfHome, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace } from './agent-home.js';
import { FakeIbms, OMEGA_CREDENTIAL, omegaBundle, omegaFake } from './fake-ibms.js';

const CRED = OMEGA_CREDENTIAL;
const ip = loopbackIp();
const bundle = omegaBundle;
const fake = omegaFake(ip);
let root = '';

t.before(async () => {
  root = t.testdir();
  await fake.start();
  t.teardown(() => fake.stop());
});

t.test('a wrong credential fails the start with a clear message', async (t) => {
  const a = await makeAgentHome(t, { root, node: 'OMEGA', ibmsIp: ip, ibmsPort: fake.port, credential: 'a-wrong-credential-0123456789' });
  const r = await a.ibma(['-a', 'start']);
  t.not(r.code, 0);
  t.match(r.stderr, /credential/);
  t.notOk(fs.existsSync(path.join(a.home, 'run', 'ibma.pid')), 'no pid file left');
  t.same(await segmentsOfHome(a.home), [], 'no space left either');
});

t.test('start, stop (space kept), start_cleanly (fresh space), SIGUSR2 (space removed)', async (t) => {
  const a = await makeAgentHome(t, { root: path.join(root, 'cycle'), node: 'OMEGA', ibmsIp: ip, ibmsPort: fake.port, credential: CRED });
  const pidFile = path.join(a.home, 'run', 'ibma.pid');
  const pid = (): number => Number(fs.readFileSync(pidFile, 'utf8'));
  const generation = (): number => {
    const s = ConfigSpace.openKey(a.indexKey);
    try {
      return s.generation;
    } finally {
      s.close();
    }
  };
  t.equal((await a.ibma(['-a', 'start'])).code, 0);
  const twice = await a.ibma(['-a', 'start']);
  t.equal(twice.code, 7, 'a second start is refused');
  t.match(twice.stderr, /already running/);
  t.equal(generation(), 1);
  const first = pid();
  process.kill(first, 'SIGUSR1');
  process.kill(first, 'SIGHUP');
  await waitFor('the signals handled', () => a.logLines().some((l) => /SIGHUP: ibma has nothing to reload/.test(l.msg)), 5000);
  t.ok(isAlive(first), 'USR1 (reopen logs) and HUP do not stop it');

  t.equal((await a.ibma(['-a', 'stop'])).code, 0);
  t.notOk(isAlive(first));
  t.equal((await segmentsOfHome(a.home)).length, 2, 'stop: the index and the config segment stay');
  const kv = await a.ibma(['-s', 'nodes_kv', '--json']);
  t.same(JSON.parse(kv.stdout), [{ node: 'OMEGA', key: 'v', value: '1' }], 'and clients still read them');

  t.equal((await a.ibma(['-a', 'start'])).code, 0);
  t.equal(generation(), 2, 'a plain start carries on the generations (from the cache)');
  t.equal((await a.ibma(['-a', 'stop'])).code, 0);
  t.equal((await a.ibma(['-a', 'start_cleanly'])).code, 0);
  t.equal(generation(), 1, 'start_cleanly starts a fresh space');

  const last = pid();
  process.kill(last, 'SIGUSR2');
  await waitFor('the agent to exit on SIGUSR2', () => !fs.existsSync(pidFile), 10_000);
  t.same(await segmentsOfHome(a.home), [], 'SIGUSR2: every segment removed');
  t.ok(a.logLines().some((l) => /SIGUSR2: stop cleanly/.test(l.msg)));
});

t.test('restarted from its cache, the agent reports the registry connected at once, not a blocking wait later', async (t) => {
  // a 30 s watch, as shipped: before, a restart from the cache said "starting" until that first wait passed
  const a = await makeAgentHome(t, { root: path.join(root, 'probe'), node: 'OMEGA', ibmsIp: ip, ibmsPort: fake.port, credential: CRED, agent: { watch_wait: 30 } });
  const link = async (): Promise<string | undefined> => (JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { ibms?: { link: string } }).ibms?.link;
  t.equal((await a.ibma(['-a', 'start'])).code, 0);
  await waitFor('connected on the first start', async () => (await link()) === 'connected' || undefined, 10_000, 200);
  t.equal((await a.ibma(['-a', 'stop'])).code, 0);
  t.equal((await a.ibma(['-a', 'start'])).code, 0, 'started again (from its cache)');
  await waitFor('connected after the restart, well inside the 30 s wait', async () => (await link()) === 'connected' || undefined, 10_000, 200);
  t.equal((await a.ibma(['-a', 'stop_cleanly'])).code, 0);
});

t.test('ibms down and no cache: start returns after retrying, the space comes when ibms does', async (t) => {
  const port = await freePort(ip);
  const a = await makeAgentHome(t, { root: path.join(root, 'down'), node: 'OMEGA', ibmsIp: ip, ibmsPort: port, credential: CRED });
  const r = await a.ibma(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  const st = JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { running: boolean; space_error?: string; ibms?: { link: string } };
  t.equal(st.running, true);
  t.match(st.space_error, /no config space/);
  t.equal(st.ibms?.link, 'unreachable');
  t.ok(a.logLines().some((l) => l.level === 'warn' && /^no config space yet: ibms not usable and no cached config/.test(l.msg)), 'a clear log line');
  const late = new FakeIbms(ip, bundle(5));
  late.credential = CRED;
  await late.start(port);
  t.teardown(() => late.stop());
  const space = await openSpace(t, a.indexKey, 10_000);
  t.equal(space.kv('OMEGA', 'v'), '5', 'the space appears once ibms answers');
  space.close();
  t.equal((await a.ibma(['-a', 'stop_cleanly'])).code, 0);
});
