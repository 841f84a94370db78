/**
 * The admin API fails closed (issue 11): fastify's route table, ROUTE_ACCESS and
 * docs/ARCHITECTURE.md §4.2 agree; every route answers the matrix for each kind of credential;
 * a route without a class stops the start; wrong guesses get 429; credentials can be re-issued.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ACCESS_CLASSES, ACCESS_MATRIX, CALLERS, ROUTE_ACCESS, type RouteAccess } from '../../ibms/access.js';
import { ROOT } from '../helpers/procs.js';
import { makeFixture, SAMPLE, type Fixture } from './fixture.js';

const SAMPLE_PARAMS: Record<string, string> = { node: 'ECIF', bin: 'ibp_test_echo.so', app: 'ibp_test_echo', project: 'echo_project', key: 'hsm', ip: '127.0.0.1', port: '18001' };
const urlOf = (u: string): string => u.replace(/:([a-z]+)/g, (_, p: string) => SAMPLE_PARAMS[p]!) + (u === '/v1/agent/config' ? '?node=ECIF' : '');
const key = (r: { method: string; url: string }) => `${r.method} ${r.url}`;

async function send(f: Fixture, r: Pick<RouteAccess, 'method' | 'url'>, token: string | undefined) {
  const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}';
  const res = await f.app.inject({
    method: r.method,
    url: urlOf(r.url),
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { payload: body } : {}),
  });
  return res;
}

t.test('the route table, ROUTE_ACCESS and the docs agree', async (t) => {
  const seen: RouteAccess[] = [];
  // every optional route on: the /metrics of ibms.conf `metrics`
  await makeFixture(t, {
    conf: (c) => void (c.metrics = {}),
    onRoute: (method, url, access) => void seen.push({ method: method as RouteAccess['method'], url, access: access as RouteAccess['access'] }),
  });
  t.ok(seen.length >= 30, `${seen.length} routes registered`);
  t.same(seen.map((r) => `${key(r)} ${r.access}`).sort(), ROUTE_ACCESS.map((r) => `${key(r)} ${r.access}`).sort(), 'fastify routes = ROUTE_ACCESS, with the same classes');

  const doc = fs.readFileSync(path.join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
  const sec = doc.slice(doc.indexOf('### 4.2 Access classes'), doc.indexOf('\n## 5.'));
  t.ok(sec.length > 100, 'docs/ARCHITECTURE.md has §4.2');
  const docRoutes = [...sec.matchAll(/^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| ([a-z-]+) \|$/gm)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
  t.same(docRoutes.sort(), ROUTE_ACCESS.map((r) => `${key(r)} ${r.access}`).sort(), 'the doc lists every route with its class');
  const docMatrix = [...sec.matchAll(/^\| ([a-z-]+) \| (\S+) \| (\S+) \| (\S+) \| (\S+) \|$/gm)].filter((m) => (ACCESS_CLASSES as readonly string[]).includes(m[1]!));
  t.same(
    Object.fromEntries(docMatrix.map((m) => [m[1], { none: m[2], node: m[3], 'admin-ro': m[4], admin: m[5] }])),
    Object.fromEntries(ACCESS_CLASSES.map((c) => [c, Object.fromEntries(CALLERS.map((w) => [w, String(ACCESS_MATRIX[c][w])]))])),
    'the doc shows the matrix',
  );
});

t.test('every route answers the matrix: no credential 401, node on admin 403, read-only admin on a mutating route 403', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE), conf: (c) => void Object.assign(c, { auth: { max_failures: 100_000, failure_window_seconds: 60 }, metrics: {} }) });
  const node = (await f.call('GET', '/v1/nodes/ECIF/credential')).json.credential as string;
  const ro = fs.readFileSync(f.home.keys('admin-ro.credential'), 'utf8').trim();
  const tokens: Record<'none' | 'node' | 'admin-ro', string | undefined> = { none: undefined, node, 'admin-ro': ro };
  for (const r of ROUTE_ACCESS) {
    for (const who of ['none', 'node', 'admin-ro'] as const) {
      const verdict = ACCESS_MATRIX[r.access][who];
      const res = await send(f, r, tokens[who]);
      // an open route may still answer 401 itself (the console login refuses a wrong credential in its body)
      const refused = r.access === 'public' ? [403, 429] : [401, 403, 429];
      if (verdict === 'allow') t.notOk(refused.includes(res.statusCode), `${key(r)} lets ${who} through (${res.statusCode})`);
      else t.equal(res.statusCode, verdict, `${key(r)} with ${who}: ${verdict}`);
    }
    if (ACCESS_MATRIX[r.access].none === 'allow') continue;
    const wrong = await send(f, r, 'f'.repeat(64));
    t.equal(wrong.statusCode, 401, `${key(r)} with a wrong credential: 401`);
  }
  // the read-only admin reads every admin view
  for (const url of ['/v1/status', '/v1/nodes', '/v1/apps', '/v1/projects', '/v1/nodes_kv', '/v1/sessions', '/v1/nodes_changed']) {
    t.equal((await f.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ro}` } })).statusCode, 200, `admin-ro reads ${url}`);
  }
});

t.test('a route without an access class (or not in ROUTE_ACCESS) stops the start', async (t) => {
  await t.rejects(
    makeFixture(t, { beforeReady: (app) => void app.get('/v1/naked', async () => 'open') }),
    /declares no access class/,
  );
  await t.rejects(
    makeFixture(t, { beforeReady: (app) => void app.get('/v1/untabled', { config: { access: 'admin-read' } }, async () => 'x') }),
    /not in ROUTE_ACCESS/,
  );
  await t.rejects(
    makeFixture(t, { beforeReady: (app) => void app.get('/v1/status2', { config: { access: 'open' as never } }, async () => 'x') }),
    /unknown access class/,
  );
});

t.test('repeated auth failures from one client get 429; a valid credential still passes', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE), conf: (c) => void (c.auth = { max_failures: 5, failure_window_seconds: 60 }) });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await f.app.inject({ method: 'GET', url: '/v1/nodes', headers: { authorization: `Bearer guess${i}` } })).statusCode);
  t.same(statuses, [401, 401, 401, 401, 401, 429, 429, 429], 'five 401, then 429');
  const limited = await f.app.inject({ method: 'POST', url: '/v1/config/distribute', headers: { authorization: 'Bearer nope' } });
  t.equal(limited.statusCode, 429);
  t.equal(limited.json().code, 'IBP_ERR_REG_RATE_LIMITED');
  t.ok(Number(limited.headers['retry-after']) > 0, 'with Retry-After');
  t.equal((await f.call('GET', '/v1/nodes')).status, 200, 'the admin credential is not limited');
  const other = await f.app.inject({ method: 'GET', url: '/v1/nodes', remoteAddress: '127.0.0.9', headers: { authorization: 'Bearer guess' } });
  t.equal(other.statusCode, 401, 'another client has its own count');
});

t.test('rotate_credential: node, admin-ro and admin credentials are re-issued and the old ones refused', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const oldNode = (await f.call('GET', '/v1/nodes/ECIF/credential')).json.credential as string;
  const agentGet = (cred: string) => f.app.inject({ method: 'GET', url: '/v1/agent/config?node=ECIF', headers: { authorization: `Bearer ${cred}` } });
  t.equal((await agentGet(oldNode)).statusCode, 200);
  const r = await f.call('POST', '/v1/credentials/rotate', { kind: 'node', node: 'ECIF' });
  t.equal(r.status, 200);
  t.equal(r.json.credential_file, f.home.keys('node_ECIF.credential'));
  t.notOk(JSON.stringify(r.json).includes(oldNode), 'no secret in the answer');
  const newNode = fs.readFileSync(f.home.keys('node_ECIF.credential'), 'utf8').trim();
  t.not(newNode, oldNode);
  t.equal(fs.statSync(f.home.keys('node_ECIF.credential')).mode & 0o777, 0o600);
  t.equal((await agentGet(oldNode)).statusCode, 401, 'the old node credential is refused');
  t.equal((await agentGet(newNode)).statusCode, 200, 'the new one works');

  const oldRo = fs.readFileSync(f.home.keys('admin-ro.credential'), 'utf8').trim();
  t.equal((await f.call('POST', '/v1/credentials/rotate', { kind: 'admin-ro' })).status, 200);
  const ro = (c: string) => f.app.inject({ method: 'GET', url: '/v1/status', headers: { authorization: `Bearer ${c}` } });
  t.equal((await ro(oldRo)).statusCode, 401);
  t.equal((await ro(fs.readFileSync(f.home.keys('admin-ro.credential'), 'utf8').trim())).statusCode, 200);

  t.equal((await f.call('POST', '/v1/credentials/rotate', { kind: 'node' })).status, 400, 'kind node needs a node');
  t.equal((await f.call('POST', '/v1/credentials/rotate', { kind: 'node', node: 'GHOST' })).status, 404);
  t.equal((await f.call('POST', '/v1/credentials/rotate', { kind: 'admin' })).status, 200);
  t.equal((await f.call('GET', '/v1/status')).status, 401, 'the old admin credential is refused');
  const admin = fs.readFileSync(f.home.keys('admin.credential'), 'utf8').trim();
  t.equal((await f.call('GET', '/v1/status', undefined, { authorization: `Bearer ${admin}` })).status, 200);
});

t.test('GET /metrics with metrics off: a 404 that says how to turn them on', async (t) => {
  const f = await makeFixture(t, {});
  const res = await f.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 404);
  t.match(res.json(), { code: 'IBP_ERR_REG_NOT_FOUND', message: /metrics are off: add "metrics": \{\} to ibms\.conf/ }, 'says what to do');
  const other = await f.app.inject({ method: 'GET', url: '/v1/nope' });
  t.notMatch(other.json().message, /metrics/, 'other unknown endpoints say nothing of metrics');
});
