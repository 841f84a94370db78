/**
 * A node keyring read from one JSON file of the home, `keys/node-keyring.json` (mode 0600: it
 * holds private keys), re-read when the file changes. This is how ibas workers and ibac find the
 * {@link NodeKeyring} of lib/node-keys.ts until ibma's config-space key reader takes over
 * (issue 11, branch nodekeys): {@link homeKeyring} is the one place to switch.
 *
 *   { "node": "N", "keys": [ { "node": "N", "sign_public": "<base64 SPKI DER>",
 *       "agree_public": "…", "sign_private": "<base64 PKCS#8 DER>", "agree_private": "…",
 *       "enable_at": ms, "disable_at": ms }, … ] }
 *
 * Entries of the local node with private halves are its own pairs (their public halves are peers
 * too: a client may call a server of its own node); every other entry is a peer's public pair.
 */
import fs from 'node:fs';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { IbpError } from './errors.js';
import type { Home } from './home.js';
import { keyCheckValue, StaticKeyring, type NodeKeyring, type NodePrivateKey, type NodePublicKey } from './node-keys.js';

export const KEYRING_FILE = 'node-keyring.json';

interface KeyEntry {
  node: string;
  sign_public: string;
  agree_public: string;
  sign_private?: string;
  agree_private?: string;
  enable_at?: number;
  disable_at?: number;
}

/** Parse a keyring file's text. Throws IBP_ERR_TX_NO_KEY naming what is wrong. */
export function parseKeyring(text: string, file: string): StaticKeyring {
  let doc: { node?: unknown; keys?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch (e) {
    throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: `${file} is not JSON (${(e as Error).message})` });
  }
  if (typeof doc.node !== 'string' || !Array.isArray(doc.keys)) throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: `${file} needs "node" and "keys"` });
  const own: NodePrivateKey[] = [];
  const peers: NodePublicKey[] = [];
  for (const e of doc.keys as KeyEntry[]) {
    try {
      const signPublicKey = createPublicKey({ key: Buffer.from(e.sign_public, 'base64'), format: 'der', type: 'spki' });
      const agreePublicKey = createPublicKey({ key: Buffer.from(e.agree_public, 'base64'), format: 'der', type: 'spki' });
      const pub: NodePublicKey = {
        node: e.node, kcv: keyCheckValue(signPublicKey, agreePublicKey), signPublicKey, agreePublicKey,
        enableAt: e.enable_at ?? 0, disableAt: e.disable_at ?? 0,
      };
      peers.push(pub);
      if (e.node === doc.node && e.sign_private && e.agree_private) {
        own.push({
          ...pub,
          signPrivateKey: createPrivateKey({ key: Buffer.from(e.sign_private, 'base64'), format: 'der', type: 'pkcs8' }),
          agreePrivateKey: createPrivateKey({ key: Buffer.from(e.agree_private, 'base64'), format: 'der', type: 'pkcs8' }),
        });
      }
    } catch (err) {
      throw new IbpError('IBP_ERR_TX_NO_KEY', { detail: `${file}: a key of node ${String(e?.node)} is unreadable (${(err as Error).message})` });
    }
  }
  return new StaticKeyring(doc.node, own, peers);
}

/** A new key pair of a node (Ed25519 + X25519) with its private halves. */
export function generateNodeKey(node: string, enableAt = 0, disableAt = 0): NodePrivateKey {
  const s = generateKeyPairSync('ed25519');
  const a = generateKeyPairSync('x25519');
  return {
    node, kcv: keyCheckValue(s.publicKey, a.publicKey), signPublicKey: s.publicKey, agreePublicKey: a.publicKey,
    signPrivateKey: s.privateKey, agreePrivateKey: a.privateKey, enableAt, disableAt,
  };
}

/** The file form of keys: private halves only for `withPrivate` nodes' keys. */
export function keyringText(node: string, keys: readonly (NodePublicKey | NodePrivateKey)[]): string {
  const der = (k: KeyObject, type: 'spki' | 'pkcs8'): string => k.export({ format: 'der', type }).toString('base64');
  return JSON.stringify({
    node,
    keys: keys.map((k) => ({
      node: k.node, sign_public: der(k.signPublicKey, 'spki'), agree_public: der(k.agreePublicKey, 'spki'),
      ...('signPrivateKey' in k && k.node === node ? { sign_private: der(k.signPrivateKey, 'pkcs8'), agree_private: der(k.agreePrivateKey, 'pkcs8') } : {}),
      enable_at: k.enableAt, disable_at: k.disableAt,
    })),
  }, null, 2);
}

/**
 * The keyring of a home, re-read (at most once a second) when its file changes; undefined while
 * there is no file. A file that cannot be read keeps the last good keyring.
 */
export function homeKeyring(home: Home, onError?: (e: unknown) => void): () => NodeKeyring | undefined {
  const file = home.keys(KEYRING_FILE);
  let ring: NodeKeyring | undefined;
  let stamp = '';
  let checked = 0;
  return () => {
    const now = Date.now();
    if (now - checked < 1000 && checked !== 0) return ring;
    checked = now;
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      ring = undefined;
      stamp = '';
      return ring;
    }
    const s = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (s === stamp) return ring;
    try {
      ring = parseKeyring(fs.readFileSync(file, 'utf8'), file);
      stamp = s;
    } catch (e) {
      onError?.(e);
    }
    return ring;
  };
}
