// A child process for the config-space tests. It runs the BUILT library (dist/, `npx tsc` first),
// as every process-level test does, and without the TypeScript loader (that costs seconds a fork).
//
//   publish <indexKey>            wait for {bundles, settings}, publish each as a writer, close
//                                 (the segments stay), report the publications
//   read <indexKey>               open a reader, report what it sees, close on 'detach', report,
//                                 exit on 'exit'
//   cas <indexKey> <id> <ms>      CAS-write loads and retry times encoding <id> into every host of
//                                 node N0 for <ms> ms after 'go'; report counts and the values read
//
// Reports go to the parent over IPC.
import { ConfigSpaceWriter } from '../../dist/lib/shm/config-segment.js';
import { ConfigSpace } from '../../dist/lib/shm/config-space.js';

const say = (msg) => process.send(msg);

function next(pred) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (pred(m)) {
        process.off('message', on);
        resolve(m);
      }
    };
    process.on('message', on);
  });
}

/** A CAS value: the writer id in bits 0..7, a sequence number in bits 8..30 (as the test decodes it). */
const encodeLoad = (id, seq) => ((seq & 0x7fffff) << 8) | id;

async function main() {
  const [cmd, keyText, a, b] = process.argv.slice(2);
  const indexKey = Number(keyText);
  if (cmd === 'publish') {
    const { bundles, settings } = await next((m) => m && typeof m === 'object' && 'bundles' in m);
    const w = new ConfigSpaceWriter(indexKey);
    const published = bundles.map((bundle) => w.publish(bundle, settings));
    w.close();
    say({ published });
  } else if (cmd === 'read') {
    const r = ConfigSpace.openKey(indexKey);
    say({ attached: { generation: r.generation, key: r.key, v: r.kv('N0', 'v') } });
    await next((m) => m === 'detach');
    r.close();
    say({ detached: true });
    await next((m) => m === 'exit');
  } else if (cmd === 'cas') {
    const id = Number(a);
    const r = ConfigSpace.openKey(indexKey);
    const hosts = r.hosts('N0').map((h) => h.index);
    say({ ready: true });
    await next((m) => m === 'go');
    const until = Date.now() + Number(b);
    let writes = 0;
    let wins = 0;
    let seq = 0;
    const loads = new Set();
    const retries = new Set();
    while (Date.now() < until) {
      for (const h of hosts) {
        const cur = r.getHostLoad(h);
        loads.add(cur);
        writes++;
        if (r.setHostLoad(h, cur, encodeLoad(id, ++seq))) wins++;
        const rt = r.getRetryAt(h);
        retries.add(rt);
        r.setRetryAt(h, rt, encodeLoad(id, seq) * 1000);
      }
    }
    r.close();
    say({ writes, wins, loads: [...loads].slice(0, 5000), retries: [...retries].slice(0, 5000) });
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

main().then(
  () => process.disconnect(),
  (e) => {
    say({ error: String(e?.stack ?? e) });
    process.exitCode = 1;
    process.disconnect();
  },
);
