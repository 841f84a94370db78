/**
 * A child process for the config-space tests (forked with the test's TypeScript loader):
 *
 *   publish <indexKey> <n>        publish n bundles as a writer, then close (segments stay)
 *   read <indexKey>               open a reader, report {generation, key}, wait for "detach" on
 *                                 stdin, close, report, exit
 *   cas <indexKey> <id> <ms>      CAS-write loads encoding <id> into every host for <ms> ms;
 *                                 report {writes, wins, seen} where seen are values read back
 *
 * Every report is one JSON line on stdout (process.send when forked with IPC).
 */
import { ConfigSpaceWriter } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import type { NodeBundle } from '../../lib/config/model.js';

function say(msg: unknown): void {
  if (process.send) process.send(msg);
  else process.stdout.write(`${JSON.stringify(msg)}\n`);
}

export function childBundle(version: number): NodeBundle {
  return {
    epoch: 'child',
    version,
    this_node: 'N0',
    nodes: [{ node: 'N0', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 1000 + version }, { ip: '127.0.0.2', port: 2000 }], kvs: { v: String(version) } }],
    apps: [{ app: 'A0', desc: `v${version}`, bin: 'a0.so', timeout: 1, timeout2: 0, invalid: 0, sha256: '', size: 0 }],
  };
}

const settings = { ibms: { ip: '127.0.0.1', port: 18000 }, connecting_timeout: 1, retry_connect_timeval: 5, min_compress_size: 1024 };

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
    say({ attached: { generation: r.generation, key: r.key, kv: r.kv('N0', 'v') } });
    await new Promise<void>((resolve) => process.on('message', (m) => m === 'detach' && resolve()));
    r.close();
    say({ detached: true });
    await new Promise<void>((resolve) => process.on('message', (m) => m === 'exit' && resolve()));
  } else if (cmd === 'cas') {
    const id = Number(a);
    const until = Date.now() + Number(b);
    const r = ConfigSpace.openKey(indexKey);
    const hosts = r.hosts('N0').map((h) => h.index);
    let writes = 0;
    let wins = 0;
    const seen = new Set<number>();
    let seq = 0;
    while (Date.now() < until) {
      for (const h of hosts) {
        const cur = r.getHostLoad(h);
        seen.add(cur);
        // a value encodes the writer: id in the low byte, a sequence number above it
        const next = ((++seq & 0x7fffff) << 8) | id;
        writes++;
        if (r.setHostLoad(h, cur, next)) wins++;
        const rt = r.getRetryAt(h);
        seen.add(rt === 0 ? 0 : Number(BigInt(rt) & 0xffn) | 0x10000);
        r.setRetryAt(h, rt, Date.now() * 256 + id);
      }
    }
    r.close();
    say({ writes, wins, seen: [...seen] });
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

main().then(
  () => process.disconnect?.(),
  (e) => {
    say({ error: String((e as Error).stack ?? e) });
    process.exitCode = 1;
    process.disconnect?.();
  },
);
