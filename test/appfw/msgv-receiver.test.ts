/**
 * The message receiver (IBMSGVReceiver_JSON) in a real JS app, through the harness (the worker's
 * own loader): typed request in, typed response out, send-ahead (what is changed afterwards is
 * not sent), a bad request refused before transmain with the field in the log, a bad response,
 * transmain's own code.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/procs.js';
import { openApp } from '../../lib/app/testing.js';
import { RECEIVER_RC } from '../../lib/appfw/msgv/receiver.js';

// the app imports `ibp-ts/…`: its private copy must live where that resolves (docs/app-framework.md)

t.test('receiveMessage: unpack, transmain, pack, send-ahead, refusals', async (t) => {
  const app = await openApp(path.join(ROOT, 'build', 'apps', 'ibp_appfw_receiver.mjs'));
  t.teardown(() => app.close());
  const plain = await app.call({ request: '{"mode":"plain","text":"hello"}' });
  t.equal(plain.appRc, 0);
  t.same(JSON.parse(plain.response.toString()), { text: 'HELLO', n: 0 });
  t.equal(plain.sentAhead, false);

  const ahead = await app.call({ request: '{"mode":"ahead","text":"early"}' });
  t.equal(ahead.sentAhead, true, 'sent ahead');
  t.same(JSON.parse(ahead.response.toString()), { text: 'EARLY', n: 0 }, 'the response as it was when sent; later changes are not sent');

  const bad = await app.call({ request: '{"mode":"plain","text":"this text is far longer than thirty-two bytes"}' });
  t.equal(bad.appRc, RECEIVER_RC.BAD_REQUEST);
  t.match(bad.response.toString(), /^request refused: IBP_ERR_MSG_FIELD: message echo_req field text: expected STRING 32/, 'the caller is told why, as the log is');
  t.ok(bad.log.some((l) => l.level === 'error' && /IBP_ERR_MSG_FIELD: message echo_req field text: expected STRING 32/.test(l.msg)), 'the log names the field');
  const notJson = await app.call({ request: 'mode=plain' });
  t.equal(notJson.appRc, RECEIVER_RC.BAD_REQUEST);
  t.ok(notJson.log.some((l) => /IBP_ERR_MSG_SYNTAX/.test(l.msg)));
  t.match(notJson.response.toString(), /^request refused: IBP_ERR_MSG_SYNTAX: /, 'the caller is told why');

  const badRsp = await app.call({ request: '{"mode":"badrsp","text":"x"}' });
  t.equal(badRsp.appRc, RECEIVER_RC.BAD_RESPONSE);
  t.ok(badRsp.log.some((l) => /response not sent: IBP_ERR_MSG_FIELD: message echo_rsp field n/.test(l.msg)));

  const rc = await app.call({ request: '{"mode":"rc","text":"x"}' });
  t.equal(rc.appRc, 7, 'transmain\'s code is the app\'s');
  t.same(JSON.parse(rc.response.toString()), { text: 'X', n: 0 }, 'with its response');
});
