import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfigFile, validate } from '../../lib/config/load.js';
import { AppConf, NodesFile, effectiveTimeout2 } from '../../lib/config/model.js';
import { Home, checkPlainFileName, homeOfConf } from '../../lib/home.js';

t.test('config files: comments allowed, errors name file, key and expectation', async (t) => {
  const dir = t.testdir({
    'ok.conf': '// nodes\n{ "nodes": [ { "node": "ECIF", "invalid": 0, /* inline */ "hosts": [{"ip":"127.0.0.1","port":18001}], "kvs": {} } ] }',
    'badport.conf': '{ "nodes": [ { "node": "ECIF", "invalid": 0, "hosts": [{"ip":"127.0.0.1","port":70000}], "kvs": {} } ] }',
    'unknown.conf': '{ "nodes": [], "extra": 1 }',
    'badjson.conf': '{ "nodes": [ ',
    'badip.conf': '{ "nodes": [ { "node": "ECIF", "invalid": 0, "hosts": [{"ip":"1.2.3","port":1}], "kvs": {} } ] }',
  });
  const ok = loadConfigFile(NodesFile, path.join(dir, 'ok.conf'));
  t.equal(ok.nodes[0]!.hosts[0]!.port, 18001);
  const expectErr = (file: string, code: string, re: RegExp) =>
    t.throws(() => loadConfigFile(NodesFile, path.join(dir, file)), { code, message: re }, file);
  expectErr('badport.conf', 'IBP_ERR_CFG_INVALID', /badport\.conf: key \/nodes\/0\/hosts\/0\/port must be <= 65535/);
  expectErr('unknown.conf', 'IBP_ERR_CFG_INVALID', /key \/extra is not a known key/);
  expectErr('badjson.conf', 'IBP_ERR_CFG_PARSE', /badjson\.conf is not valid JSON/);
  expectErr('badip.conf', 'IBP_ERR_CFG_INVALID', /port|ip.*must be an IPv4 address/);
  expectErr('missing.conf', 'IBP_ERR_CFG_NOT_FOUND', /missing\.conf not found/);
});

t.test('app model: names, bins and timeout2', async (t) => {
  const app = { app: 'ibp_test_echo', desc: 'echo', bin: 'ibp_test_echo.so', timeout: 2, timeout2: 0, invalid: 0 };
  t.same(validate(AppConf, app, 'x'), app);
  t.same(validate(AppConf, { ...app, bin: 'ibp_ts_echo.mjs' }, 'x').bin, 'ibp_ts_echo.mjs', 'a JS app package (.mjs) is a bin too');
  t.throws(() => validate(AppConf, { ...app, bin: 'app.js' }, 'x'), /key \/bin must be a plain \.so or \.mjs file name/);
  t.equal(effectiveTimeout2(app), 3);
  t.equal(effectiveTimeout2({ timeout: 2, timeout2: 5 }), 5);
  t.throws(() => validate(AppConf, { ...app, bin: '../evil.so' }, 'x'), /key \/bin must be a plain \.so or \.mjs file name/);
  t.throws(() => validate(AppConf, { ...app, app: 'bad name' }, 'x'), /key \/app must be an identifier/);
});

t.test('home layout and plain file names', async (t) => {
  const root = t.testdir();
  const home = new Home(root);
  home.ensure();
  for (const d of ['etc', 'log', 'file', 'so', 'keys', 'run']) t.ok(fs.statSync(path.join(root, d)).isDirectory(), d);
  t.equal(fs.statSync(path.join(root, 'keys')).mode & 0o777, 0o700, 'keys/ is private');
  t.equal(home.confPath('ibms.conf'), path.join(root, 'etc', 'ibms.conf'), 'bare name → etc/');
  t.equal(homeOfConf(path.join(root, 'etc', 'ibas.conf')).root, root);
  for (const bad of ['', '../x', 'a/b', '/etc/passwd', '..', 'a\0b', '-rf', 'x..y']) {
    t.throws(() => checkPlainFileName(bad), { code: 'IBP_ERR_FILE_NAME' }, JSON.stringify(bad));
  }
  t.equal(checkPlainFileName('1_ABCDEFGHIJ.tmp'), '1_ABCDEFGHIJ.tmp');
});
