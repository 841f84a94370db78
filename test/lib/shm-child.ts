/**
 * A child process for the config-space tests, forked with the test's TypeScript loader:
 *
 *   publish <indexKey> <n>        publish n bundles as a writer, then close (segments stay)
 *   read <indexKey>               open a reader, report what it sees, close on the message
 *                                 'detach', report, exit on 'exit'
 *   cas <indexKey> <id> <ms>      CAS-write loads and retry times encoding <id> into every host of
 *                                 node N0 for <ms> ms; report counts and every value read back
 *
 * Reports go to the parent over IPC.
 */
import { pathToFileURL } from 'node:url';
import { ConfigSpaceWriter } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import type { NodeBundle } from '../../lib/config/model.js';

function say(msg: unknown): void {
  process.send!(msg);
}

function next(what: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (m === what) {
        process.off('message', on);
        resolve();
      }
    };
    process.on('message', on);
  });
}

export function childBundle(version: number): NodeBundle {
  return {
    epoch: 'child',
    version,
    this_node: 'N0',
    nodes: [{ node: 'N0', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 1000 + version }, { ip: '127.0.0.2', port: 2000 }, { ip: '127.0.0.3', port: 3000 }], kvs: { v: String(version) } }],
    apps: [{ app: 'A0', desc: `v${version}`, bin: 'a0.so', timeout: 1, timeout2: 0, invalid: 0, sha256: '', size: 0 }],
  };
}

const settings = { ibms: { ip: '127.0.0.1', port: 18000 }, connecting_timeout: 1, retry_connect_timeval: 5, min_compress_size: 1024 };

/** A CAS value: the writer id in bits 0..7, a sequence number in bits 8..30. */
export function encodeLoad(id: number, seq: number): number {
  return ((seq & 0x7fffff) << 8) | id;
}

async function main(): Promise<void> {
  const [cmd, keyText, a, b] = process.argv.slice(2);
  const indexKey = Number(keyText);
  if (cmd === 'publish') {
    const w = new ConfigSpaceWriter(indexKey);
    const out = [];
    for (let i = 1; i <= Number(a); i++) out.push(w.publish(childBundle(i), settings));
    w.close();
    say({ published: out });
  } else if (cmd === 'read') {
    const r = ConfigSpace.openKey(indexKey);
    say({ attached: { generation: r.generation, key: r.key, v: r.kv('N0', 'v') } });
    await next('detach');
    r.close();
    say({ detached: true });
    await next('exit');
  } else if (cmd === 'cas') {
    const id = Number(a);
    const until = Date.now() + Number(b);
    const r = ConfigSpace.openKey(indexKey);
    const hosts = r.hosts('N0').map((h) => h.index);
    say({ ready: true });
    await next('go');
    let writes = 0;
    let wins = 0;
    let seq = 0;
    const loads = new Set<number>();
    const retries = new Set<number>();
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
    // the values read back, reduced to what a test can check: (writer id, sequence) pairs valid?
    r.close();
    say({ writes, wins, loads: [...loads].slice(0, 5000), retries: [...retries].slice(0, 5000) });
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

// run only as a forked child, not when a test imports childBundle
if (process.send && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.disconnect?.(),
    (e) => {
      say({ error: String((e as Error).stack ?? e) });
      process.exitCode = 1;
      process.disconnect?.();
    },
  );
}
