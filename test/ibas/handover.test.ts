// The environment handed from one ibas process to another (ibas/handover.ts): what the manager
// encodes for a worker and for a USR2 new generation decodes to the same values, the variables are
// removed once read (never leak to the next process), and malformed values are refused.
import t from 'tap';
import { decodeWorkerEnv, encodeUpgradeEnv, encodeWorkerEnv, takeUpgradeEnv, MANAGER_ONLY_SECTIONS, UPGRADE_LISTEN_FD, WORKER_MALLOC_ARENAS } from '../../ibas/handover.js';
import type { IbasConf } from '../../lib/config/ibas-conf.js';

/** A validated-looking ibas.conf (the manager validated it; the handover only carries it). */
const CONF: IbasConf = {
  server: { ip: '127.0.0.1', port: 9000 },
  mpm: { mode: 'STATIC_WORKERPOOL', max_count: 2, DYNAMIC_WORKERPOOL: { min_idle_count: 1, max_idle_count: 2, create_interval: 1, destroy_interval: 1 }, max_process_count: 0 },
  security: { sign_flag: 'none', compress_flag: 1, encrypt_flag: 'none' },
  app: { max_so_cache_count: 16, preload: ['a'] },
  comm: { header_timeout: 3 },
  log: { level: 'info' },
  schedule: [{ name: 'nightly', cron: '0 2 * * *', app: 'a', request: 'x'.repeat(1000) }],
  metrics: { ip: '127.0.0.1', port: 9100, token: 't'.repeat(32) },
  ibma: { config_filename: 'ibma.conf' },
};
const { schedule: _s, metrics: _m, ...WORKER_CONF } = CONF;

t.test('worker environment round trip', async (t) => {
  const base = { PATH: '/bin', IBP_DAEMON_CHILD: '1', IBAS_LISTEN_FD: '4', IBAS_UPGRADE_FROM: '99' };
  const env = encodeWorkerEnv(base, { home: '/h', confFile: '/h/etc/ibas.conf', conf: CONF, slot: 3, generation: 2, kind: 'pool' });
  t.equal(env.IBP_DAEMON_CHILD, undefined, 'a worker is not a daemon child');
  t.equal(env.IBAS_LISTEN_FD, undefined, 'nor a new generation');
  t.equal(env.IBAS_UPGRADE_FROM, undefined);
  t.equal(env.PATH, '/bin');
  t.equal(env.MALLOC_ARENA_MAX, WORKER_MALLOC_ARENAS, 'a worker runs with few malloc arenas');
  t.equal(encodeWorkerEnv({ MALLOC_ARENA_MAX: '8' }, { home: '/h', confFile: '/h/etc/ibas.conf', conf: CONF, slot: 0, generation: 1, kind: 'pool' }).MALLOC_ARENA_MAX, '8', 'unless the operator set it');
  t.same(MANAGER_ONLY_SECTIONS, ['schedule', 'metrics']);
  t.strictSame(decodeWorkerEnv(env), { home: '/h', confFile: '/h/etc/ibas.conf', conf: WORKER_CONF, slot: 3, generation: 2, kind: 'pool' }, 'the conf arrives as validated, without the manager-only sections');
  t.equal(env.IBAS_SLOT, undefined, 'read variables are removed');
  t.equal(env.IBAS_CONF_JSON, undefined, 'the conf too (it must not leak into an app\'s children)');
  const good = { IBAS_CONF: 'x', IBAS_CONF_JSON: JSON.stringify(WORKER_CONF), IBAS_SLOT: '1', IBAS_GENERATION: '1', IBAS_WORKER_MODE: 'pool' };
  t.ok(decodeWorkerEnv({ ...good }), 'a well-formed handover');
  t.equal(decodeWorkerEnv({ ...good, IBAS_SLOT: '-1' }), undefined, 'a negative slot is refused');
  t.equal(decodeWorkerEnv({ ...good, IBAS_WORKER_MODE: 'thread' }), undefined, 'an unknown kind is refused');
  t.equal(decodeWorkerEnv({ ...good, IBAS_CONF_JSON: undefined }), undefined, 'no conf: refused (a worker never reads ibas.conf itself)');
  t.equal(decodeWorkerEnv({ ...good, IBAS_CONF_JSON: '{"server":' }), undefined, 'malformed JSON is refused');
  t.equal(decodeWorkerEnv({ ...good, IBAS_CONF_JSON: '[]' }), undefined, 'a conf that is not an object is refused');
  t.equal(decodeWorkerEnv({ ...good, IBAS_CONF_JSON: JSON.stringify({ ...WORKER_CONF, security: null }) }), undefined, 'a section a worker reads is missing: refused');
  t.equal(decodeWorkerEnv({}), undefined, 'started by hand');
});

t.test('a conf too large for an environment string is refused at the encoder, with what to do', async (t) => {
  const huge = { ...CONF, security: { ...CONF.security, http_unsigned_allow: Array.from({ length: 3000 }, (_, i) => `app_${i}_${'x'.repeat(40)}`) } };
  t.throws(() => encodeWorkerEnv({}, { home: '/h', confFile: '/h/etc/ibas.conf', conf: huge, slot: 0, generation: 1, kind: 'pool' }), /more than a worker's environment can carry/);
  const bigSchedule = { ...CONF, schedule: Array.from({ length: 4 }, (_, i) => ({ name: `s${i}`, cron: '* * * * *', app: 'a', request: 'y'.repeat(60_000) })) };
  t.ok(encodeWorkerEnv({}, { home: '/h', confFile: '/h/etc/ibas.conf', conf: bigSchedule, slot: 0, generation: 1, kind: 'pool' }).IBAS_CONF_JSON, 'large schedule bodies stay with the manager');
});

t.test('upgrade environment round trip', async (t) => {
  const env = encodeUpgradeEnv({ IBAS_SLOT: '1', IBAS_CONF: 'c' }, '/h', { generation: 3, from: 1234 });
  t.equal(env.IBAS_SLOT, undefined, 'no worker variable leaks into a new generation');
  t.same(takeUpgradeEnv(env), { listenFd: UPGRADE_LISTEN_FD, generation: 3, from: 1234 });
  t.equal(env.IBAS_UPGRADE_FROM, undefined, 'read variables are removed');
  t.equal(takeUpgradeEnv({ PATH: '/bin' }), undefined, 'a plain start');
  t.throws(() => takeUpgradeEnv({ IBAS_UPGRADE_FROM: '12', IBAS_LISTEN_FD: 'four', IBAS_GENERATION: '2' }), /malformed upgrade handover/, 'a malformed handover is refused, not half-adopted');
  t.throws(() => takeUpgradeEnv({ IBAS_UPGRADE_FROM: '12', IBAS_LISTEN_FD: '4' }), /malformed/, 'a partial one too');
});
