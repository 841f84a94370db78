/**
 * The cluster config model: what ibms stores, what it serves to agents, and what ibma writes into
 * shared memory. Each type comes with its JSON schema (TypeBox), so REST bodies, config files and
 * CLI input are validated by one definition.
 *
 * Names (node, app, project, kv key) are identifiers: letters, digits, `_ - .`, at most 64
 * characters; app bins are plain .so or .mjs file names (no path).
 */
import { Type, type Static } from '@sinclair/typebox';

export const NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$';
export const Name = Type.String({ pattern: NAME_PATTERN, description: 'an identifier: letters, digits, _ - . (at most 64)' });
export const Flag01 = Type.Union([Type.Literal(0), Type.Literal(1)], { description: '0 or 1' });
export const Ip = Type.String({ format: 'ipv4', description: 'an IPv4 address' });
export const Port = Type.Integer({ minimum: 1, maximum: 65535, description: 'a TCP port 1..65535' });
/** App package file endings: a .so (C) or an ES module (JavaScript/TypeScript app, issue 15). */
export const APP_PACKAGE_EXTS = ['.so', '.mjs'] as const;
export const BinName = Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,126}\\.(so|mjs)$', description: 'a plain .so or .mjs file name, no path' });
/** Is `bin` named like an app package (.so or .mjs)? */
export function isAppPackageName(bin: string): boolean {
  return APP_PACKAGE_EXTS.some((e) => bin.endsWith(e));
}
/** Seconds; fractions allowed (tests use sub-second timeouts). */
export const Seconds = Type.Number({ exclusiveMinimum: 0, maximum: 86400, description: 'seconds (> 0)' });

export const HostConf = Type.Object({
  ip: Ip,
  port: Port,
  invalid: Type.Optional(Flag01),
}, { additionalProperties: false });
export type HostConf = Static<typeof HostConf>;

export const NodeConf = Type.Object({
  node: Name,
  invalid: Flag01,
  /** IBP's key expression (e.g. an expiry or key-rotation tag of the node's credential). */
  key_exp: Type.Optional(Type.String({ maxLength: 256 })),
  hosts: Type.Array(HostConf, { maxItems: 256 }),
  kvs: Type.Record(Name, Type.String({ maxLength: 4096 })),
}, { additionalProperties: false });
export type NodeConf = Static<typeof NodeConf>;

export const AppConf = Type.Object({
  app: Name,
  desc: Type.String({ maxLength: 256 }),
  bin: BinName,
  /** Client timeout T, seconds. */
  timeout: Seconds,
  /** Server timeout; 0 means timeout × 1.5 (see {@link effectiveTimeout2}). */
  timeout2: Type.Number({ minimum: 0, maximum: 86400 }),
  invalid: Flag01,
  /** Default server node of the app (may be empty). */
  server_node: Type.Optional(Type.Union([Name, Type.Literal('')])),
}, { additionalProperties: false });
export type AppConf = Static<typeof AppConf>;

export const ProjectConf = Type.Object({
  project: Name,
  server_nodes: Type.Array(Name, { maxItems: 10000 }),
  client_nodes: Type.Array(Name, { maxItems: 10000 }),
  apps: Type.Array(Name, { maxItems: 100000 }),
}, { additionalProperties: false });
export type ProjectConf = Static<typeof ProjectConf>;

/** etc/ibp_nodes.conf */
export const NodesFile = Type.Object({ nodes: Type.Array(NodeConf) }, { additionalProperties: false });
export type NodesFile = Static<typeof NodesFile>;
/** etc/ibp_apps.conf */
export const AppsFile = Type.Object({ apps: Type.Array(AppConf) }, { additionalProperties: false });
export type AppsFile = Static<typeof AppsFile>;
/** etc/ibp_projects.conf */
export const ProjectsFile = Type.Object({ projects: Type.Array(ProjectConf) }, { additionalProperties: false });
export type ProjectsFile = Static<typeof ProjectsFile>;

/** An app as an agent sees it: with its package's identity. */
export const AppWithPackage = Type.Composite([
  AppConf,
  Type.Object({
    /** sha256 (hex) of so/<bin> in the registry, '' when ibms has no package for it. */
    sha256: Type.String({ pattern: '^([0-9a-f]{64})?$' }),
    size: Type.Integer({ minimum: 0 }),
    /** The registry's signed manifest of this package (lib/package-signing.ts): canonical JSON. */
    manifest: Type.Optional(Type.String({ maxLength: 2048 })),
    /** base64 Ed25519 signature of `manifest`. */
    signature: Type.Optional(Type.String({ maxLength: 256 })),
    /**
     * Config space only (ibma sets it, ibms never sends it): the signed sha256 of the package
     * being installed right now, accepted by ibas besides `sha256` so an update has no window.
     */
    sha256_next: Type.Optional(Type.String({ pattern: '^([0-9a-f]{64})?$' })),
  }),
], { additionalProperties: false });
export type AppWithPackage = Static<typeof AppWithPackage>;

/**
 * What ibms serves to the agent of one node (GET /v1/agent/config): the node itself, every node
 * related to it through a project, the apps of those projects, and the version of this answer.
 */
/** A node's public key pair in a bundle (lib/node-keys.ts NodeKeyWire; raw keys in base64url). */
export const NodeKeyInfo = Type.Object({
  node: Name,
  kcv: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  sign_public: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
  agree_public: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
  /** ms since the epoch from when senders use the pair (0 = at once). */
  enable_at: Type.Integer({ minimum: 0 }),
  /** ms since the epoch after which receivers refuse the pair (0 = never). */
  disable_at: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });

export const NodeBundle = Type.Object({
  /** Identity of the registry's data; a change of epoch means "full resync". */
  epoch: Type.String({ minLength: 1, maxLength: 64 }),
  /** Version of this node's config; never goes backwards within an epoch. */
  version: Type.Integer({ minimum: 0 }),
  this_node: Name,
  nodes: Type.Array(NodeConf),
  apps: Type.Array(AppWithPackage),
  /** The registry's package-signing public key, base64 SPKI DER (agents pin it on first use). */
  package_key: Type.Optional(Type.String({ maxLength: 256 })),
  /**
   * The bins (of `apps`) this node may download (GET /v1/agent/packages/:bin), as the registry's
   * entitlement rule decides them (ibms store.entitledToBin: a server node of a project holding an
   * app of the bin, or such an app's server_node). ibma installs these and no others; [] for a
   * client-only node. Absent from an older registry: the agent then asks and takes a 403 as "not ours".
   */
  package_bins: Type.Optional(Type.Array(BinName, { maxItems: 100000 })),
  /**
   * Public key pairs of the bundle's nodes (lib/node-keys.ts NodeKeyWire), with their enable and
   * disable times; ibma publishes them in the config space. Never private halves.
   */
  node_keys: Type.Optional(Type.Array(NodeKeyInfo, { maxItems: 1_000_000 })),
}, { additionalProperties: false });
export type NodeBundle = Static<typeof NodeBundle>;

/** timeout2 as the server uses it: 0 means timeout × 1.5. */
export function effectiveTimeout2(app: Pick<AppConf, 'timeout' | 'timeout2'>): number {
  return app.timeout2 > 0 ? app.timeout2 : app.timeout * 1.5;
}
