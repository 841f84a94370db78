/**
 * Package signing (issue 11, "Signed packages, verified twice"): the registry's Ed25519 key and the
 * signed manifest of each app package. node:crypto only.
 *
 *   ibms  keys/package-signing.key (PKCS#8 PEM, 0600) + keys/package-signing.pub (SPKI PEM, 0644),
 *         made by `ibms -a init`, or at start when missing. Signs one manifest per (app, bin, sha256).
 *   ibma  verifies the manifest's signature with the PINNED public key (keys/package-signing.pub of
 *         the agent home: placed there by an admin, or pinned from the first bundle that carries
 *         one) and the sha256 and size of the downloaded bytes against the manifest.
 *   ibas  compares the sha256 of the exact bytes it dlopens with the signed sha256 of the config space.
 *
 * A manifest travels as its canonical JSON text (keys sorted, no blanks) and the signature is over
 * exactly those UTF-8 bytes, so a verifier never re-serialises anything. The public key travels as
 * base64 of its SPKI DER form.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { IbpError } from './errors.js';

/** File names in keys/ (both homes: the registry's key pair, the agent's pinned public key). */
export const SIGNING_KEY_FILE = 'package-signing.key';
export const SIGNING_PUB_FILE = 'package-signing.pub';

/** IBP_APP_ABI_VERSION of lib/native/ibp_app.h (= ibas/app-abi.ts APP_ABI_VERSION; a test keeps them equal). */
export const PACKAGE_ABI_VERSION = 1;

export interface Manifest {
  abi_version: number;
  app: string;
  bin: string;
  sha256: string;
  size: number;
  /** When the registry signed it, ms since the epoch. */
  time: number;
}

export interface SignedManifest {
  /** Canonical JSON of a {@link Manifest}. */
  manifest: string;
  /** base64 Ed25519 signature of the manifest's UTF-8 bytes. */
  signature: string;
}

const MANIFEST_KEYS = ['abi_version', 'app', 'bin', 'sha256', 'size', 'time'] as const;

/** Canonical JSON: the keys in sorted order, no whitespace. */
export function canonicalManifest(m: Manifest): string {
  return JSON.stringify(Object.fromEntries(MANIFEST_KEYS.map((k) => [k, m[k]])));
}

/** Parse a manifest text; undefined when it is not a canonical manifest. */
export function parseManifest(text: string): Manifest | undefined {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return undefined;
  const o = m as Record<string, unknown>;
  if (typeof o.app !== 'string' || typeof o.bin !== 'string' || typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) return undefined;
  for (const k of ['abi_version', 'size', 'time'] as const) if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0) return undefined;
  const parsed = o as unknown as Manifest;
  return canonicalManifest(parsed) === text ? parsed : undefined;
}

/** The registry's key pair. */
export class PackageSigner {
  readonly #priv: crypto.KeyObject;
  readonly publicKey: crypto.KeyObject;
  /** base64 SPKI DER of the public key (what bundles carry). */
  readonly publicKeyB64: string;

  constructor(priv: crypto.KeyObject) {
    if (priv.asymmetricKeyType !== 'ed25519') throw new IbpError('IBP_ERR_PKG_KEY', { file: '(key)', detail: `it is a ${priv.asymmetricKeyType} key, an ed25519 key is needed` });
    this.#priv = priv;
    this.publicKey = crypto.createPublicKey(priv);
    this.publicKeyB64 = (this.publicKey.export({ format: 'der', type: 'spki' }) as Buffer).toString('base64');
  }

  sign(m: Manifest): SignedManifest {
    const manifest = canonicalManifest(m);
    return { manifest, signature: crypto.sign(null, Buffer.from(manifest, 'utf8'), this.#priv).toString('base64') };
  }

  /**
   * Load `keyFile` (PKCS#8 PEM) or, when it does not exist, create the pair: the private key
   * O_EXCL with mode 0600, the public key beside it (`.pub`, 0644). A private key readable by
   * group or others is refused.
   */
  static loadOrCreate(keyFile: string, pubFile: string): { signer: PackageSigner; created: boolean } {
    let pem: string | undefined;
    try {
      const fd = fs.openSync(keyFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        const st = fs.fstatSync(fd);
        if ((st.mode & 0o077) !== 0) throw new IbpError('IBP_ERR_PKG_KEY', { file: keyFile, detail: `its mode is ${(st.mode & 0o777).toString(8)}: run chmod 600 on it` });
        pem = fs.readFileSync(fd, 'utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      if (e instanceof IbpError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new IbpError('IBP_ERR_PKG_KEY', { file: keyFile, detail: (e as Error).message }, { cause: e });
    }
    if (pem !== undefined) {
      let signer: PackageSigner;
      try {
        signer = new PackageSigner(crypto.createPrivateKey(pem));
      } catch (e) {
        if (e instanceof IbpError) throw new IbpError('IBP_ERR_PKG_KEY', { ...e.params, file: keyFile }, { cause: e });
        throw new IbpError('IBP_ERR_PKG_KEY', { file: keyFile, detail: `not a PKCS#8 PEM private key (${(e as Error).message})` }, { cause: e });
      }
      writePublicIfMissing(pubFile, signer.publicKey);
      return { signer, created: false };
    }
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    try {
      fs.writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { flag: 'wx', mode: 0o600 });
    } catch (e) {
      // another process won the race: take its key
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return PackageSigner.loadOrCreate(keyFile, pubFile);
      throw new IbpError('IBP_ERR_PKG_KEY', { file: keyFile, detail: `cannot write it: ${(e as Error).message}` }, { cause: e });
    }
    const signer = new PackageSigner(privateKey);
    try {
      fs.rmSync(pubFile, { force: true });
    } catch {
      // replaced below or reported by the write
    }
    writePublicIfMissing(pubFile, signer.publicKey);
    return { signer, created: true };
  }
}

function writePublicIfMissing(pubFile: string, key: crypto.KeyObject): void {
  try {
    fs.writeFileSync(pubFile, key.export({ format: 'pem', type: 'spki' }), { flag: 'wx', mode: 0o644 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new IbpError('IBP_ERR_PKG_KEY', { file: pubFile, detail: `cannot write it: ${(e as Error).message}` }, { cause: e });
  }
}

/** A public key from base64 SPKI DER (bundles) or PEM (files); throws IBP_ERR_PKG_KEY. */
export function publicKeyOf(text: string, where: string): crypto.KeyObject {
  try {
    const key = text.includes('-----BEGIN')
      ? crypto.createPublicKey(text)
      : crypto.createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`it is a ${key.asymmetricKeyType} key, an ed25519 key is needed`);
    return key;
  } catch (e) {
    throw new IbpError('IBP_ERR_PKG_KEY', { file: where, detail: (e as Error).message }, { cause: e });
  }
}

/** base64 SPKI DER of a public key (the form bundles carry, and the one compared when pinning). */
export function publicKeyB64(key: crypto.KeyObject): string {
  return (key.export({ format: 'der', type: 'spki' }) as Buffer).toString('base64');
}

/**
 * Check a signed manifest: the signature with `key`, then the manifest's own fields against
 * what the caller expects. Returns the manifest, or a reason for the refusal.
 */
export function verifyManifest(key: crypto.KeyObject, signed: SignedManifest, expect: { app?: string; bin: string }): { ok: true; manifest: Manifest } | { ok: false; reason: string } {
  let good = false;
  try {
    good = crypto.verify(null, Buffer.from(signed.manifest, 'utf8'), key, Buffer.from(signed.signature, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: 'the manifest signature does not verify with the pinned package-signing key' };
  const m = parseManifest(signed.manifest);
  if (!m) return { ok: false, reason: 'the signed manifest is not a canonical manifest' };
  if (m.bin !== expect.bin) return { ok: false, reason: `the manifest is for bin ${m.bin}, not ${expect.bin}` };
  if (expect.app !== undefined && m.app !== expect.app) return { ok: false, reason: `the manifest is for app ${m.app}, not ${expect.app}` };
  return { ok: true, manifest: m };
}
