/**
 * The live web console of ibms in a real headless Chromium (Debian's `chromium`, installed by
 * scripts/test-setup.sh; puppeteer-core drives it): a wrong credential is refused, the admin
 * credential signs in, the server host is listed without a session, then appears as up once its
 * ibas starts, and its load and transaction rate change while a client calls a slow app; the
 * events list records it. The test writes a screenshot (to $IBP_CONSOLE_SCREENSHOT when set:
 * docs/console.png was made that way).
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, privateDir } from '../helpers/cluster.js';
import { freePort, waitFor } from '../helpers/procs.js';
import { TestClient } from '../ibas/helpers/client.js';

const CHROMIUM = '/usr/bin/chromium';

if (!fs.existsSync(CHROMIUM)) {
  t.skip('chromium is not installed: run `bash scripts/test-setup.sh` as root (apt-get install chromium)');
} else {
  t.test('sign in, see a host appear and its load change while a client calls', async (t) => {
    const { default: puppeteer } = await import('puppeteer-core');
    const APPS = [{ app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 20 }];
    const c = await Cluster.start(t, { bins: APPS.map((a) => a.bin) });
    const port = await freePort(c.ip);
    const metricsPort = await freePort(c.ip);
    await c.configure({ nodes: { SRV: [`${c.ip}:${port}`], CLI: [] }, apps: APPS, projects: [{ project: 'PAY', serverNodes: ['SRV'], clientNodes: ['CLI'], apps: ['ibp_test_slow'] }] });
    const srv = await c.server('SRV', { port, maxCount: 3, start: false, ibas: { monitor: { heartbeat_interval: 0.3 }, metrics: { ip: c.ip, port: metricsPort } } });
    await c.waitPackages(srv, ['ibp_test_slow.so']);

    const dir = privateDir(t, 'chromium');
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: path.join(dir, 'profile'),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`http://${c.ip}:${c.registryPort}/console`, { waitUntil: 'load', timeout: 60_000 });

    await page.type('#credential', 'not-the-credential');
    await page.click('#signin');
    await page.waitForFunction(() => document.querySelector('#error')?.textContent?.startsWith('refused'), { timeout: 30_000 });
    t.pass('a wrong credential is refused');
    const events = await fetch(`http://${c.ip}:${c.registryPort}/console/events`);
    t.equal(events.status, 401, 'no event stream without a console session');
    await events.body?.cancel();

    const credential = fs.readFileSync(path.join(c.registryHome, 'keys', 'admin.credential'), 'utf8').trim();
    await page.$eval('#credential', (el) => ((el as HTMLInputElement).value = ''));
    await page.type('#credential', credential);
    await page.click('#signin');
    await page.waitForFunction((host: string) => [...document.querySelectorAll('#hosts tbody tr')].some((r) => r.textContent!.includes(host) && r.textContent!.includes('no session')), { timeout: 30_000 }, srv.hostKey);
    t.pass('signed in: the host is listed, without a session');
    t.match(await page.$eval('#map', (el) => el.textContent), /PAY.*SRV.*CLI.*ibp_test_slow/, 'the cluster map');

    await c.startServer(srv);
    await page.waitForFunction((host: string) => [...document.querySelectorAll('#hosts tbody tr')].some((r) => r.textContent!.includes(host) && r.textContent!.includes('up')), { timeout: 30_000 }, srv.hostKey);
    t.pass('the host appears as up once its ibas runs');

    // two clients keep two workers busy: the reported load goes from 0 to 2
    const clients = await Promise.all([0, 1].map(() => TestClient.connect(c.ip, port)));
    t.teardown(() => clients.forEach((x) => x.socket.destroy()));
    let calling = true;
    const loops = clients.map(async (cl) => {
      for (let i = 0; calling && i < 40; i++) await cl.call('ibp_test_slow', '800', { timeoutMs: 30_000 }).catch(() => undefined);
    });
    const load = await page.waitForFunction((host: string) => {
      const cell = document.querySelector(`#hosts .load[data-host="${host}"]`);
      return cell && Number(cell.textContent) >= 1 ? cell.textContent : false;
    }, { timeout: 60_000 }, srv.hostKey);
    t.ok(Number(await load.jsonValue()) >= 1, 'the host\'s load rises while the clients call');
    await page.waitForFunction((host: string) => [...document.querySelectorAll('#hosts tbody tr')].some((r) => r.textContent!.includes(host) && Number(r.children[5]?.textContent) > 0), { timeout: 60_000 }, srv.hostKey);
    t.pass('the transaction rate read from its metrics shows');
    t.match(await page.$eval('#events', (el) => el.textContent), /session started: ibas SRV/, 'the events list the new session');
    t.match(await page.$eval('#events', (el) => el.textContent), /load 0 → [12]/, 'and the load change');
    const shot = path.join(dir, 'console.png');
    await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
    t.ok(fs.statSync(shot).size > 10_000, 'a screenshot was written');
    if (process.env.IBP_CONSOLE_SCREENSHOT) fs.copyFileSync(shot, process.env.IBP_CONSOLE_SCREENSHOT);
    calling = false;
    await Promise.all(loops);
    clients.forEach((x) => x.socket.destroy()); // a kept-alive connection still counts in the load
    await waitFor('load back to 0', async () => {
      const v = await page.$eval(`#hosts .load[data-host="${srv.hostKey}"]`, (el) => el.textContent);
      return v === '0' || v === '';
    }, 30_000, 200);
    t.pass('the load falls back when the clients stop');
  });
}
