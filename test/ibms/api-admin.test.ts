/** The admin REST API through fastify inject(): commands, derivation, auth, bad bodies, lz4. */
import t from 'tap';
import { lz4Compress, lz4Decompress } from '../../lib/codec/lz4.js';
import { makeFixture, SAMPLE } from './fixture.js';

t.test('node, host, kv, app and project commands record the nodes they touch', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const changed = async (): Promise<string[]> => ((await f.call('GET', '/v1/nodes_changed')).json.nodes as string[]).sort();
  const distribute = async () => (await f.call('POST', '/v1/config/distribute')).json;

  t.same(await changed(), [], 'nothing changed at start');

  let r = await f.call('POST', '/v1/nodes/ECIF/hosts', { ip: '127.0.0.9', port: 18001 });
  t.equal(r.status, 201);
  t.same(r.json.touched.sort(), ['CORE', 'ECIF'], 'a host change touches the node and its related nodes');
  t.same(await changed(), ['CORE', 'ECIF']);
  const d = await distribute();
  t.same(d.distributed.map((x: { node: string }) => x.node).sort(), ['CORE', 'ECIF']);
  t.same(await changed(), [], 'distribution clears the list');

  r = await f.call('PUT', '/v1/nodes/BATCH/kvs/queue', { value: 'Q1' });
  t.same(r.json.touched.sort(), ['BATCH', 'CORE'], 'a kv change touches the node and its related nodes');
  r = await f.call('PATCH', '/v1/apps/ibp_test_echo', { timeout: 7 });
  t.same(r.json.touched.sort(), ['CORE', 'ECIF'], 'an app change touches its projects\' nodes');
  r = await f.call('PATCH', '/v1/projects/batch', { client_nodes: ['CRM'] });
  t.same(r.json.touched.sort(), ['BATCH', 'CORE', 'CRM'], 'a project change touches its nodes before and after');
  t.same(await changed(), ['BATCH', 'CORE', 'CRM', 'ECIF']);
  await distribute();

  r = await f.call('POST', '/v1/nodes', { node: 'NEW1' });
  t.equal(r.status, 201);
  t.same(r.json.touched, ['NEW1'], 'a new node touches itself');
  r = await f.call('POST', '/v1/apps', { app: 'new_app', desc: 'new', bin: 'new_app.so', timeout: 3 });
  t.same(r.json.touched, [], 'an app in no project touches nobody');
  r = await f.call('POST', '/v1/projects', { project: 'p_new', server_nodes: ['NEW1'], client_nodes: ['CRM'], apps: ['new_app'] });
  t.same(r.json.touched.sort(), ['CRM', 'NEW1']);
  r = await f.call('DELETE', '/v1/apps/new_app');
  t.same(r.json.touched.sort(), ['CRM', 'NEW1'], 'removing an app touches the nodes of the projects that held it');
  t.same(r.json.projects, ['p_new']);
  t.same((await f.call('GET', '/v1/projects?project=p_new')).json.projects[0].apps, []);
  r = await f.call('DELETE', '/v1/projects/p_new');
  t.same(r.json.touched.sort(), ['CRM', 'NEW1']);
  r = await f.call('DELETE', '/v1/nodes/NEW1');
  t.equal(r.status, 200);
  t.notOk((await changed()).includes('NEW1'), 'a removed node leaves the list');

  const nodes = (await f.call('GET', '/v1/nodes')).json.nodes;
  t.same(nodes.map((n: { node: string }) => n.node), ['ECIF', 'CORE', 'CRM', 'BATCH']);
  t.same((await f.call('GET', '/v1/nodes?node=BATCH')).json.nodes[0].kvs, { queue: 'Q1' });
  t.same((await f.call('GET', '/v1/nodes_kv?node=ECIF')).json.kvs, [{ node: 'ECIF', key: 'hsm', value: 'model-a' }]);
  const apps = (await f.call('GET', '/v1/apps?app=ibp_test_echo')).json.apps;
  t.match(apps[0], { app: 'ibp_test_echo', timeout: 7, sha256: '', size: 0 });
});

t.test('errors: unknown names, duplicates, bad bodies answer 4xx with a code and the store is unchanged', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  const before = JSON.stringify(f.reg.store.toData());
  const cases: [string, 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', string, unknown, number, string, RegExp][] = [
    ['unknown node', 'PATCH', '/v1/nodes/GHOST', { invalid: 1 }, 404, 'IBP_ERR_REG_NOT_FOUND', /node GHOST not found/],
    ['duplicate node', 'POST', '/v1/nodes', { node: 'ECIF' }, 409, 'IBP_ERR_REG_EXISTS', /node ECIF already exists/],
    ['duplicate host', 'POST', '/v1/nodes/CORE/hosts', { ip: '127.0.0.1', port: 18001 }, 409, 'IBP_ERR_REG_HOST_TAKEN', /already a host of node ECIF/],
    ['unknown node in a project', 'POST', '/v1/projects', { project: 'x', server_nodes: ['GHOST'] }, 400, 'IBP_ERR_REG_INVALID', /unknown node GHOST/],
    ['app without bin', 'POST', '/v1/apps', { app: 'x', desc: '', timeout: 1 }, 400, 'IBP_ERR_REG_INVALID', /key \/bin is required/],
    ['bin with a path', 'POST', '/v1/apps', { app: 'x', desc: '', bin: '../x.so', timeout: 1 }, 400, 'IBP_ERR_REG_INVALID', /key \/bin must be a plain \.so or \.mjs file name/],
    ['bad port', 'POST', '/v1/nodes/CORE/hosts', { ip: '127.0.0.1', port: 70000 }, 400, 'IBP_ERR_REG_INVALID', /key \/port/],
    ['bad ip', 'POST', '/v1/nodes/CORE/hosts', { ip: '1.2.3', port: 1 }, 400, 'IBP_ERR_REG_INVALID', /key \/ip must be an IPv4 address/],
    ['unknown key', 'POST', '/v1/nodes', { node: 'Z', colour: 'red' }, 400, 'IBP_ERR_REG_INVALID', /key \/colour is not a known key/],
    ['bad name', 'POST', '/v1/nodes', { node: '../etc' }, 400, 'IBP_ERR_REG_INVALID', /key \/node must be an identifier/],
    ['node in use', 'DELETE', '/v1/nodes/ECIF', undefined, 409, 'IBP_ERR_REG_IN_USE', /project echo_project/],
    ['malformed JSON', 'POST', '/v1/nodes', '{"node": ', 400, 'IBP_ERR_CODEC_JSON', /malformed JSON body/],
    ['prototype poisoning', 'POST', '/v1/nodes', '{"node":"P","__proto__":{"x":1}}', 400, 'IBP_ERR_CODEC_JSON', /malformed JSON/],
    ['no body', 'POST', '/v1/nodes', '', 400, 'IBP_ERR_', /./],
    ['update_app without package', 'POST', '/v1/apps/ibp_test_echo/update', undefined, 404, 'IBP_ERR_REG_NO_PACKAGE', /ibp_test_echo\.so/],
    ['unknown endpoint', 'GET', '/v1/nope', undefined, 404, 'IBP_ERR_REG_NOT_FOUND', /endpoint GET \/v1\/nope/],
    ['download unknown node', 'POST', '/v1/config/download', { node: 'GHOST' }, 404, 'IBP_ERR_REG_NOT_FOUND', /node GHOST/],
  ];
  for (const [what, method, url, body, status, code, re] of cases) {
    const r = await f.call(method, url, body);
    t.equal(r.status, status, `${what}: status`);
    t.ok(String(r.json?.code).startsWith(code), `${what}: code ${r.json?.code}`);
    t.match(r.json?.message, re, `${what}: message`);
  }
  const wrongType = await f.app.inject({ method: 'POST', url: '/v1/nodes', headers: { ...f.auth, 'content-type': 'text/plain' }, payload: 'x' });
  t.equal(wrongType.statusCode, 400, 'a non-JSON content type is refused');
  t.match(wrongType.json(), { code: 'IBP_ERR_REG_INVALID', message: /send application\/json/ });
  t.equal(JSON.stringify(f.reg.store.toData()), before, 'no refused request changed the data');
  t.same(f.reg.versions.changed(), [], 'and none touched a node');
});

t.test('auth: no or wrong credential → 401; a node credential cannot use admin routes', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE) });
  let r = await f.app.inject({ method: 'GET', url: '/v1/nodes' });
  t.equal(r.statusCode, 401);
  t.equal(r.json().code, 'IBP_ERR_REG_AUTH');
  r = await f.app.inject({ method: 'GET', url: '/v1/nodes', headers: { authorization: 'Bearer nope' } });
  t.equal(r.statusCode, 401);
  r = await f.app.inject({ method: 'POST', url: '/v1/nodes', headers: { authorization: `Basic ${f.admin}`, 'content-type': 'application/json' }, payload: '{"node":"X"}' });
  t.equal(r.statusCode, 401, 'only Bearer is accepted');
  const core = (await f.call('GET', '/v1/nodes/CORE/credential')).json.credential;
  t.match(core, /^[0-9a-f]{64}$/);
  r = await f.app.inject({ method: 'POST', url: '/v1/nodes', headers: { authorization: `Bearer ${core}`, 'content-type': 'application/json' }, payload: '{"node":"X"}' });
  t.equal(r.statusCode, 403);
  t.equal(r.json().code, 'IBP_ERR_REG_FORBIDDEN');
  t.notOk(f.reg.store.nodes.has('X'));
});

t.test('body limit: an oversized body is 413, also when lz4 announces more than the limit', async (t) => {
  const f = await makeFixture(t, { conf: (c) => { c.comm.max_body_size = 4096; } });
  const big = JSON.stringify({ node: 'BIG', kvs: { k: 'x'.repeat(5000) } });
  let r = await f.call('POST', '/v1/nodes', big);
  t.equal(r.status, 413);
  t.equal(r.json.code, 'IBP_ERR_CODEC_TOO_LARGE');
  // small on the wire, huge once decompressed (a zip bomb)
  const bomb = lz4Compress(Buffer.from(JSON.stringify({ node: 'BOMB', key_exp: ' '.repeat(200_000) })))!;
  t.ok(bomb.length < 4096);
  r = await f.call('POST', '/v1/nodes', bomb, { 'content-encoding': 'lz4' });
  t.equal(r.status, 413);
  t.equal(r.json.code, 'IBP_ERR_CODEC_TOO_LARGE');
  r = await f.call('POST', '/v1/nodes', Buffer.from([0, 0, 0, 50, 0xff, 0xff, 0xff]), { 'content-encoding': 'lz4' });
  t.equal(r.status, 400);
  t.equal(r.json.code, 'IBP_ERR_CODEC_LZ4', 'a corrupt lz4 block is 400');
  r = await f.call('POST', '/v1/nodes', '{"node":"G"}', { 'content-encoding': 'gzip' });
  t.equal(r.status, 400, 'an unknown content encoding is 400');
  t.same(f.reg.store.toData().nodes, [], 'nothing was stored');
});

t.test('lz4 both ways, above and below min_compress_size', async (t) => {
  const f = await makeFixture(t, { data: structuredClone(SAMPLE), conf: (c) => { c.comm.min_compress_size = 600; } });
  // request bodies: compressed and plain both accepted
  const kvBody = Buffer.from(JSON.stringify({ value: 'v'.repeat(2000) }));
  const packed = lz4Compress(kvBody)!;
  let r = await f.call('PUT', '/v1/nodes/CRM/kvs/big', packed, { 'content-encoding': 'lz4' });
  t.equal(r.status, 200, 'an lz4 request body is decoded');
  t.equal(f.reg.store.node('CRM').kvs.big, 'v'.repeat(2000));

  // answers: compressed only when asked and at least min_compress_size
  const plainBig = await f.app.inject({ method: 'GET', url: '/v1/nodes', headers: f.auth });
  t.notOk(plainBig.headers['content-encoding'], 'no Accept-Encoding: plain answer');
  t.ok(plainBig.rawPayload.length >= 600);
  const lzBig = await f.app.inject({ method: 'GET', url: '/v1/nodes', headers: { ...f.auth, 'accept-encoding': 'gzip, lz4' } });
  t.equal(lzBig.headers['content-encoding'], 'lz4', 'big answer with Accept-Encoding lz4: compressed');
  t.ok(lzBig.rawPayload.length < plainBig.rawPayload.length);
  t.same(JSON.parse(lz4Decompress(lzBig.rawPayload, 1 << 20).toString()), plainBig.json(), 'and decodes to the same JSON');
  const lzSmall = await f.app.inject({ method: 'GET', url: '/v1/nodes_changed', headers: { ...f.auth, 'accept-encoding': 'lz4' } });
  t.ok(lzSmall.rawPayload.length < 600);
  t.notOk(lzSmall.headers['content-encoding'], 'small answer: plain even when lz4 is accepted');
  t.same(lzSmall.json(), { nodes: ['CRM'] });
});
