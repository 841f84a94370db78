/**
 * The registry: the store plus everything that follows a change. Every admin command goes
 * through here: change the store, derive the touched nodes (derive.ts), record them for
 * `-s nodes_changed` (versions.ts), keep credentials in step, log one event line.
 * Agents' bundles are built (and cached) here too.
 *
 * What an agent receives is what was distributed. A node's bundle at version V is exactly what
 * the store held when V was given (distribute_config, download_config, the package watcher, or
 * the start of the worker for version 1). Pending edits stay invisible:
 *
 * - a node is *clean* while no change touched it since its last distribution: its published
 *   bundle is the live one (built from the store, cached);
 * - the first change that touches a clean node freezes its published bundle first (the JSON text
 *   of its current version, taken from the store BEFORE the change), and the node is served from
 *   that frozen text until it is distributed again;
 * - distributing a node drops its frozen text: the live bundle, with the new version, is published.
 *
 * So frozen texts exist only for nodes with pending changes (`-s nodes_changed`). Package identity
 * (sha256, size) in a bundle is the registry's copy, refreshed only by update_app and the so/
 * watcher (after freezing), so a .so replaced on disk does not leak into a published version
 * either. A node added and never distributed (version 0) has no published bundle: agents get
 * IBP_ERR_REG_NOT_DISTRIBUTED (a watch is held until it is distributed).
 *
 * After a restart the worker publishes what it loaded (the saved files) as version 1 of a new
 * epoch: unsaved edits are gone, and edits saved but not distributed become visible then (save
 * answers and logs them as `undistributed`).
 */
import fs from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../lib/log.js';
import type { Home } from '../lib/home.js';
import type { IbmsConf } from '../lib/config/ibms-conf.js';
import type { AppConf, AppWithPackage, HostConf, NodeBundle, NodeConf, ProjectConf } from '../lib/config/model.js';
import { IbpError } from '../lib/errors.js';
import { Store, type AppPatch, type DataFiles, type NodePatch, type ProjectPatch } from './store.js';
import { touchedByApp, touchedByBin, touchedByNode, touchedByProject, union } from './derive.js';
import { Versions } from './versions.js';
import { Sessions } from './sessions.js';
import { Credentials } from './credentials.js';
import { NodeKeys, type Rotation } from './node-keys.js';
import { keyElapses } from '../lib/config/ibms-conf.js';
import { Packages, type PackageInfo } from './packages.js';
import { PackageSigner, SIGNING_KEY_FILE, SIGNING_PUB_FILE } from '../lib/package-signing.js';
import { dataFiles, loadData, PARTS, saveData, saveSecond, snapshotForSave, snapshotImages, writeImages, type Loaded, type Part, type SaveResult } from './persist.js';
import { credentialFiles, parseSecondTarget, sendSecondCopy } from './second-copy.js';
import path from 'node:path';

/** What a change answers: the nodes it touched (now listed by `-s nodes_changed`). */
export interface ChangeResult {
  ok: true;
  touched: string[];
}

export interface RegistryOptions {
  home: Home;
  conf: IbmsConf;
  log: Logger;
  /** Data already loaded (tests, bench); loaded from the files of ibms.conf otherwise. */
  loaded?: Loaded;
  epoch?: string;
}

interface CachedBundle {
  key: string;
  json: string;
}

/** A node's published bundle, frozen before the first change that touched it. */
interface FrozenBundle {
  version: number;
  json: string;
}

/** The package-signing key of the home; created (and logged) when a home from before it has none. */
function loadSigner(home: Home, log: Logger): PackageSigner {
  fs.mkdirSync(home.dir('keys'), { recursive: true, mode: 0o700 });
  const keyFile = home.keys(SIGNING_KEY_FILE);
  const { signer, created } = PackageSigner.loadOrCreate(keyFile, home.keys(SIGNING_PUB_FILE));
  if (created) log.warn({ file: keyFile }, `package-signing key created , file[${keyFile}] , agents that pinned another key refuse packages until their keys/${SIGNING_PUB_FILE} is replaced`);
  return signer;
}

export class Registry {
  readonly home: Home;
  readonly conf: IbmsConf;
  readonly log: Logger;
  readonly files: DataFiles;
  readonly store: Store;
  readonly versions: Versions;
  readonly sessions: Sessions;
  readonly credentials: Credentials;
  /** Every node's key pairs (ibms/node-keys.ts). */
  readonly nodeKeys: NodeKeys;
  readonly packages: Packages;
  readonly loadedFrom: Record<Part, 'json' | 'bin'>;
  readonly loadMs: number;
  readonly loadCpuMs: number;
  readonly startedAt = Date.now();
  #saving: Promise<unknown> = Promise.resolve();
  readonly #bundles = new LRUCache<string, CachedBundle>({ max: 2048 });
  /** Published bundles of nodes with pending changes (see the file comment). */
  readonly #frozen = new Map<string, FrozenBundle>();
  /** Package identity as bundles show it: refreshed only by update_app and the watcher. */
  readonly #pkg = new Map<string, PackageInfo>();
  #pkgGeneration = 0;

  constructor(opts: RegistryOptions) {
    this.home = opts.home;
    this.conf = opts.conf;
    this.log = opts.log;
    this.files = dataFiles(opts.home, opts.conf);
    // a bad misc.second_config_dump stops the start, not the first save
    parseSecondTarget(opts.conf.misc.second_config_dump, opts.home);
    const loaded = opts.loaded ?? loadData(this.files);
    this.store = loaded.store;
    this.loadedFrom = loaded.sources;
    this.loadMs = loaded.ms;
    this.loadCpuMs = loaded.cpuMs;
    this.versions = new Versions(this.store.nodes.keys(), opts.epoch);
    this.sessions = new Sessions(opts.conf.session.expire_seconds);
    this.credentials = new Credentials(opts.home);
    for (const n of this.store.nodes.keys()) this.credentials.ensureNode(n);
    keyElapses(opts.conf); // a bad security section stops the start, not the first rotation
    // pairs are read (or, for a node from before node keys, created) when first needed: logged
    this.nodeKeys = new NodeKeys(opts.home, { onCreate: (node, file) => this.log.info({ node, file }, `node key pair created , node[${node}] file[${file}]`) });
    this.packages = new Packages(opts.home.dir('so'), loadSigner(opts.home, opts.log));
  }

  #record(what: string, touched: Set<string>): ChangeResult {
    this.versions.markChanged(touched);
    const list = [...touched];
    this.log.info({ touched: list.length }, `${what} , touched[${list.slice(0, 20).join(' ')}${list.length > 20 ? ' …' : ''}]`);
    return { ok: true, touched: list };
  }

  /**
   * Freeze the published bundle of every clean node among `nodes`, before a change touches them.
   * Nodes never distributed (version 0) have nothing published and are skipped.
   */
  #freeze(nodes: Iterable<string>): void {
    for (const n of nodes) {
      if (this.#frozen.has(n) || !this.store.nodes.has(n)) continue;
      const version = this.versions.version(n);
      if (version === 0) continue;
      this.#frozen.set(n, { version, json: this.#liveJson(n, version) });
    }
  }

  /** Nodes just given a new version: their live bundle is now the published one. */
  #published(nodes: Iterable<string>): void {
    for (const n of nodes) this.#frozen.delete(n);
  }

  /** How many nodes are served from a frozen bundle (pending changes). */
  get frozenCount(): number {
    return this.#frozen.size;
  }

  // ---------------------------------------------------------------- nodes

  addNode(n: { node: string; invalid?: 0 | 1; key_exp?: string; hosts?: HostConf[]; kvs?: Record<string, string> }): ChangeResult & { credential_file: string } {
    const conf: NodeConf = { node: n.node, invalid: n.invalid ?? 0, hosts: n.hosts ?? [], kvs: n.kvs ?? {} };
    if (n.key_exp !== undefined) conf.key_exp = n.key_exp;
    this.store.addNode(conf);
    this.credentials.ensureNode(n.node);
    this.nodeKeys.ensureNode(n.node);
    return { ...this.#record(`add_node ${n.node}`, touchedByNode(this.store, n.node)), credential_file: this.home.keys(`node_${n.node}.credential`) };
  }

  setNode(node: string, patch: NodePatch): ChangeResult {
    this.#freeze(touchedByNode(this.store, node));
    this.store.setNode(node, patch);
    return this.#record(`set_node ${node}`, touchedByNode(this.store, node));
  }

  removeNode(node: string): ChangeResult {
    this.store.node(node);
    const before = touchedByNode(this.store, node);
    this.#freeze(before);
    this.store.removeNode(node);
    before.delete(node);
    this.#frozen.delete(node);
    this.versions.drop(node);
    this.sessions.dropNode(node);
    this.credentials.removeNode(node);
    this.nodeKeys.removeNode(node);
    this.#bundles.delete(node);
    return this.#record(`remove_node ${node}`, before);
  }

  addHost(node: string, host: HostConf): ChangeResult {
    this.#freeze(touchedByNode(this.store, node));
    this.store.addHost(node, host);
    return this.#record(`add_node_host ${node} ${host.ip}:${host.port}`, touchedByNode(this.store, node));
  }

  removeHost(node: string, ip: string, port: number): ChangeResult {
    this.#freeze(touchedByNode(this.store, node));
    this.store.removeHost(node, ip, port);
    return this.#record(`remove_node_host ${node} ${ip}:${port}`, touchedByNode(this.store, node));
  }

  addKv(node: string, key: string, value: string): ChangeResult {
    this.#freeze(touchedByNode(this.store, node));
    this.store.addKv(node, key, value);
    return this.#record(`add_node_kv ${node} ${key}`, touchedByNode(this.store, node));
  }

  setKv(node: string, key: string, value: string): ChangeResult {
    this.#freeze(touchedByNode(this.store, node));
    this.store.setKv(node, key, value);
    return this.#record(`set_node_kv ${node} ${key}`, touchedByNode(this.store, node));
  }

  removeKv(node: string, key: string): ChangeResult {
    this.#freeze(touchedByNode(this.store, node));
    this.store.removeKv(node, key);
    return this.#record(`remove_node_kv ${node} ${key}`, touchedByNode(this.store, node));
  }

  // ---------------------------------------------------------------- apps

  addApp(a: AppConf): ChangeResult {
    this.store.addApp(a);
    return this.#record(`add_app ${a.app}`, touchedByApp(this.store, a.app));
  }

  setApp(app: string, patch: AppPatch): ChangeResult {
    this.#freeze(touchedByApp(this.store, app));
    this.store.setApp(app, patch);
    return this.#record(`set_app ${app}`, touchedByApp(this.store, app));
  }

  /** The app's package changed (`-a update_app`): re-read it and touch the app's nodes. */
  updateApp(app: string): ChangeResult & { sha256: string; size: number } {
    const a = this.store.app(app);
    // every app sharing the package shows its new identity: all their nodes are touched
    const { nodes } = touchedByBin(this.store, a.bin);
    this.#freeze(nodes);
    const info = this.#refreshPackage(a.bin);
    if (!info.sha256) throw new IbpError('IBP_ERR_REG_NO_PACKAGE', { bin: a.bin, app, dir: this.packages.dir });
    return { ...this.#record(`update_app ${app} sha256[${info.sha256}]`, nodes), ...info };
  }

  removeApp(app: string): ChangeResult & { projects: string[] } {
    const before = touchedByApp(this.store, app);
    this.#freeze(before);
    const projects = this.store.removeApp(app);
    return { ...this.#record(`remove_app ${app}`, before), projects };
  }

  /**
   * A package file was added or replaced in so/ (the watcher). Every app using it is touched;
   * with `immediate` those nodes are distributed at once (IBP's 立即自动推导下发).
   */
  packageChanged(bin: string, immediate: boolean): { apps: string[]; touched: string[]; distributed: { node: string; version: number }[] } {
    const { apps, nodes } = touchedByBin(this.store, bin);
    this.#freeze(nodes);
    const info = this.#refreshPackage(bin);
    if (apps.length === 0) {
      this.log.info(`package ${bin} changed , no app uses it`);
      return { apps, touched: [], distributed: [] };
    }
    this.#record(`package ${bin} changed sha256[${info.sha256}] apps[${apps.join(' ')}]`, nodes);
    const distributed = immediate ? this.versions.distributeNodes(nodes) : [];
    this.#published(distributed.map((d) => d.node));
    if (immediate) this.log.info(`distribute , package ${bin} , nodes[${distributed.map((d) => `${d.node}:${d.version}`).join(' ')}]`);
    return { apps, touched: [...nodes], distributed };
  }

  // ---------------------------------------------------------------- node keys

  /**
   * `-a rotate_node_key --node N` (ibms/node-keys.ts): a new pair enabled after
   * security.new_key_enable_elapse, the old ones disabled after old_key_disable_elapse. The nodes
   * holding N's public keys (N and its related nodes) are distributed at once, like the so/
   * watcher does: the elapse times run from now, so agents must learn the new pair now. (Pending
   * edits of those nodes are published with it.)
   */
  rotateNodeKey(node: string): ChangeResult & Rotation & { distributed: { node: string; version: number }[] } {
    this.store.node(node);
    const { enableMs, disableMs } = keyElapses(this.conf);
    const touched = touchedByNode(this.store, node);
    this.#freeze(touched);
    const rot = this.nodeKeys.rotate(node, enableMs, disableMs);
    const rec = this.#record(`rotate_node_key ${node} kcv[${rot.kcv}] enable_at[${new Date(rot.enable_at).toISOString()}] old[${rot.old.map((o) => `${o.kcv}@${new Date(o.disable_at).toISOString()}`).join(' ')}]${rot.dropped.length ? ` dropped[${rot.dropped.join(' ')}]` : ''}`, touched);
    // nodes never distributed (version 0) stay so: they get the keys with their first distribution
    const distributed = this.versions.distributeNodes([...touched].filter((n) => this.versions.version(n) > 0));
    this.#published(distributed.map((d) => d.node));
    this.log.info(`distribute , rotate_node_key ${node} , nodes[${distributed.map((d) => `${d.node}:${d.version}`).join(' ')}]`);
    return { ...rec, ...rot, distributed };
  }

  // ---------------------------------------------------------------- projects

  addProject(p: ProjectConf): ChangeResult {
    if (!this.store.projects.has(p.project)) this.#freeze([...p.server_nodes, ...p.client_nodes]);
    this.store.addProject(p);
    return this.#record(`add_project ${p.project}`, touchedByProject(this.store, p.project));
  }

  setProject(project: string, patch: ProjectPatch): ChangeResult {
    const before = touchedByProject(this.store, project);
    this.store.project(project);
    this.#freeze(union(before, patch.server_nodes ?? [], patch.client_nodes ?? []));
    this.store.setProject(project, patch);
    return this.#record(`set_project ${project}`, union(before, touchedByProject(this.store, project)));
  }

  removeProject(project: string): ChangeResult {
    this.store.project(project);
    const before = touchedByProject(this.store, project);
    this.#freeze(before);
    this.store.removeProject(project);
    return this.#record(`remove_project ${project}`, before);
  }

  // ---------------------------------------------------------------- distribution

  distribute(): { ok: true; distributed: { node: string; version: number }[] } {
    const distributed = this.versions.distribute();
    this.#published(distributed.map((d) => d.node));
    this.log.info(`distribute_config , nodes[${distributed.map((d) => `${d.node}:${d.version}`).join(' ')}]`);
    return { ok: true, distributed };
  }

  download(node: string): { ok: true; node: string; version: number } {
    this.store.node(node);
    const version = this.versions.download(node);
    this.#published([node]);
    this.log.info(`download_config , node[${node}] version[${version}]`);
    return { ok: true, node, version };
  }

  // ---------------------------------------------------------------- persistence

  /** `-a save_config`: saves run one after another; each writes a snapshot taken when asked. */
  save(): Promise<SaveResult & { undistributed: string[] }> {
    const snap = snapshotForSave(this.files, this.store.toData());
    const undistributed = this.versions.changed();
    const target = parseSecondTarget(this.conf.misc.second_config_dump, this.home);
    const run = this.#saving.catch(() => undefined).then(async () => {
      const r = await saveData(this.files, snap, target?.kind === 'dir' ? target.dir : undefined);
      if (target && target.kind !== 'dir') {
        const files = [...PARTS.map((p) => ({ name: path.basename(this.files[p]), data: snap.texts[p] })), ...credentialFiles(this.home)];
        r.second.push(...await sendSecondCopy(target, files, this.home));
      }
      return r;
    });
    this.#saving = run;
    return run.then((r) => {
      this.log.info(`save_config , files[${r.files.join(' ')}] images[${r.images.join(' ')}] second[${r.second.join(' ')}]`);
      if (undistributed.length > 0) this.log.warn(`save_config , saved changes not distributed yet , nodes[${undistributed.slice(0, 20).join(' ')}${undistributed.length > 20 ? ' …' : ''}] , a restart would publish them`);
      return { ...r, undistributed };
    });
  }

  /** The `second_config_dump` schedule: write only the second copy (misc.second_config_dump). */
  dumpSecond(): Promise<string[]> {
    const target = parseSecondTarget(this.conf.misc.second_config_dump, this.home);
    if (!target) return Promise.reject(new Error('misc.second_config_dump is not set: nothing to dump'));
    const snap = snapshotForSave(this.files, this.store.toData());
    const run = this.#saving.catch(() => undefined).then(() => (target.kind === 'dir'
      ? saveSecond(this.files, snap, target.dir)
      : sendSecondCopy(target, [...PARTS.map((p) => ({ name: path.basename(this.files[p]), data: snap.texts[p] })), ...credentialFiles(this.home)], this.home)));
    this.#saving = run;
    return run.then((files) => {
      this.log.info(`second_config_dump , files[${files.join(' ')}]`);
      return files;
    });
  }

  /** `-a build_config`: write the .bin images of the current data. */
  build(): Promise<string[]> {
    const images = snapshotImages(this.store.toData());
    const run = this.#saving.catch(() => undefined).then(() => writeImages(this.files, images));
    this.#saving = run;
    return run.then((files) => {
      this.log.info(`build_config , images[${files.join(' ')}]`);
      return files;
    });
  }

  /** Wait for saves in progress (graceful stop). */
  async settle(): Promise<void> {
    await this.#saving.catch(() => undefined);
  }

  // ---------------------------------------------------------------- bundles

  /**
   * The published bundle of a node as JSON text, with its version: the frozen one while the node
   * has pending changes, else the live one (cached until the data or the version change).
   * IBP_ERR_REG_NOT_DISTRIBUTED for a node never distributed.
   */
  bundleJson(node: string): { json: string; version: number } {
    this.store.node(node);
    const frozen = this.#frozen.get(node);
    if (frozen) return frozen;
    const version = this.versions.version(node);
    if (version === 0) throw new IbpError('IBP_ERR_REG_NOT_DISTRIBUTED', { node });
    return { json: this.#liveJson(node, version), version };
  }

  #liveJson(node: string, version: number): string {
    const key = `${this.store.generation}:${this.#pkgGeneration}:${this.nodeKeys.generation}:${version}`;
    const hit = this.#bundles.get(node);
    if (hit && hit.key === key) return hit.json;
    const json = JSON.stringify(this.#liveBundle(node, version));
    this.#bundles.set(node, { key, json });
    return json;
  }

  /** N, its related nodes, the apps of its projects with their packages' identity, and the bins N may download, from the store as it is now. */
  #liveBundle(node: string, version: number): NodeBundle {
    const self = this.store.node(node);
    const nodes = [self, ...[...this.store.related(node)].map((n) => this.store.nodes.get(n)!)];
    const apps: AppWithPackage[] = [];
    const bins = new Set<string>();
    for (const name of this.store.appsOfNode(node)) {
      const a = this.store.apps.get(name)!;
      apps.push({ ...a, ...this.packages.signedFor(a.app, a.bin, this.#packageInfo(a.bin)) });
      bins.add(a.bin);
    }
    // the same rule GET /v1/agent/packages/:bin enforces: the agent installs these and asks for no other
    const package_bins = [...bins].filter((bin) => this.store.entitledToBin(node, bin));
    const node_keys = nodes.flatMap((n) => this.nodeKeys.publicKeys(n.node));
    return { epoch: this.versions.epoch, version, this_node: node, nodes, apps, package_key: this.packages.signer.publicKeyB64, package_bins, node_keys };
  }

  /** The published bundle of a node, parsed (tests, tools). */
  bundle(node: string): NodeBundle {
    return JSON.parse(this.bundleJson(node).json) as NodeBundle;
  }

  #packageInfo(bin: string): PackageInfo {
    let info = this.#pkg.get(bin);
    if (!info) {
      info = { ...this.packages.info(bin) };
      this.#pkg.set(bin, info);
    }
    return info;
  }

  /** Re-read a package (after freezing the nodes that show it): later bundles show the new identity. */
  #refreshPackage(bin: string): PackageInfo {
    const info = { ...this.packages.refresh(bin) };
    const old = this.#pkg.get(bin);
    if (!old || old.sha256 !== info.sha256 || old.size !== info.size) this.#pkgGeneration++;
    this.#pkg.set(bin, info);
    return info;
  }

  status(): Record<string, unknown> {
    return {
      pid: process.pid,
      ppid: process.ppid,
      server: `${this.conf.server.ip}:${this.conf.server.port}`,
      epoch: this.versions.epoch,
      started_at: new Date(this.startedAt).toISOString(),
      loaded_from: this.loadedFrom,
      load_ms: Math.round(this.loadMs * 10) / 10,
      load_cpu_ms: Math.round(this.loadCpuMs * 10) / 10,
      nodes: this.store.nodes.size,
      apps: this.store.apps.size,
      projects: this.store.projects.size,
      nodes_changed: this.versions.changed().length,
      watches: this.versions.waiting(),
      sessions: this.sessions.list().length,
    };
  }
}
