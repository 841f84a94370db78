// The environment handed from one ibas process to another (ibas/handover.ts): what the manager
// encodes for a worker and for a USR2 new generation decodes to the same values, the variables are
// removed once read (never leak to the next process), and malformed values are refused.
import t from 'tap';
import { decodeWorkerEnv, encodeUpgradeEnv, encodeWorkerEnv, takeUpgradeEnv, UPGRADE_LISTEN_FD } from '../../ibas/handover.js';

t.test('worker environment round trip', async (t) => {
  const base = { PATH: '/bin', IBP_DAEMON_CHILD: '1', IBAS_LISTEN_FD: '4', IBAS_UPGRADE_FROM: '99' };
  const env = encodeWorkerEnv(base, { home: '/h', confFile: '/h/etc/ibas.conf', slot: 3, generation: 2, kind: 'pool' });
  t.equal(env.IBP_DAEMON_CHILD, undefined, 'a worker is not a daemon child');
  t.equal(env.IBAS_LISTEN_FD, undefined, 'nor a new generation');
  t.equal(env.IBAS_UPGRADE_FROM, undefined);
  t.equal(env.PATH, '/bin');
  t.same(decodeWorkerEnv(env), { home: '/h', confFile: '/h/etc/ibas.conf', slot: 3, generation: 2, kind: 'pool' });
  t.equal(env.IBAS_SLOT, undefined, 'read variables are removed');
  t.equal(decodeWorkerEnv({ IBAS_CONF: 'x', IBAS_SLOT: '-1', IBAS_GENERATION: '1', IBAS_WORKER_MODE: 'pool' }), undefined, 'a negative slot is refused');
  t.equal(decodeWorkerEnv({ IBAS_CONF: 'x', IBAS_SLOT: '1', IBAS_GENERATION: '1', IBAS_WORKER_MODE: 'thread' }), undefined, 'an unknown kind is refused');
  t.equal(decodeWorkerEnv({}), undefined, 'started by hand');
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
