/**
 * The registry: the store plus everything that follows a change. Every admin command goes
 * through here: change the store, derive the touched nodes (derive.ts), record them for
 * `-s nodes_changed` (versions.ts), keep credentials in step, log one event line.
 * Agents' bundles are built (and cached) here too.
 */
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
import { Packages } from './packages.js';
import { dataFiles, loadData, saveData, saveSecond, snapshotForSave, snapshotImages, writeImages, type Loaded, type Part, type SaveResult } from './persist.js';

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

export class Registry {
  readonly home: Home;
  readonly conf: IbmsConf;
  readonly log: Logger;
  readonly files: DataFiles;
  readonly store: Store;
  readonly versions: Versions;
  readonly sessions: Sessions;
  readonly credentials: Credentials;
  readonly packages: Packages;
  readonly loadedFrom: Record<Part, 'json' | 'bin'>;
  readonly loadMs: number;
  readonly loadCpuMs: number;
  readonly startedAt = Date.now();
  #saving: Promise<unknown> = Promise.resolve();
  readonly #bundles = new LRUCache<string, CachedBundle>({ max: 2048 });

  constructor(opts: RegistryOptions) {
    this.home = opts.home;
    this.conf = opts.conf;
    this.log = opts.log;
    this.files = dataFiles(opts.home, opts.conf);
    const loaded = opts.loaded ?? loadData(this.files);
    this.store = loaded.store;
    this.loadedFrom = loaded.sources;
    this.loadMs = loaded.ms;
    this.loadCpuMs = loaded.cpuMs;
    this.versions = new Versions(this.store.nodes.keys(), opts.epoch);
    this.sessions = new Sessions(opts.conf.session.expire_seconds);
    this.credentials = new Credentials(opts.home);
    for (const n of this.store.nodes.keys()) this.credentials.ensureNode(n);
    this.packages = new Packages(opts.home.dir('so'));
  }

  #record(what: string, touched: Set<string>): ChangeResult {
    this.versions.markChanged(touched);
    const list = [...touched];
    this.log.info({ touched: list.length }, `${what} , touched[${list.slice(0, 20).join(' ')}${list.length > 20 ? ' …' : ''}]`);
    return { ok: true, touched: list };
  }

  // ---------------------------------------------------------------- nodes

  addNode(n: { node: string; invalid?: 0 | 1; key_exp?: string; hosts?: HostConf[]; kvs?: Record<string, string> }): ChangeResult & { credential_file: string } {
    const conf: NodeConf = { node: n.node, invalid: n.invalid ?? 0, hosts: n.hosts ?? [], kvs: n.kvs ?? {} };
    if (n.key_exp !== undefined) conf.key_exp = n.key_exp;
    this.store.addNode(conf);
    this.credentials.ensureNode(n.node);
    return { ...this.#record(`add_node ${n.node}`, touchedByNode(this.store, n.node)), credential_file: this.home.keys(`node_${n.node}.credential`) };
  }

  setNode(node: string, patch: NodePatch): ChangeResult {
    this.store.setNode(node, patch);
    return this.#record(`set_node ${node}`, touchedByNode(this.store, node));
  }

  removeNode(node: string): ChangeResult {
    this.store.node(node);
    const before = touchedByNode(this.store, node);
    this.store.removeNode(node);
    before.delete(node);
    this.versions.drop(node);
    this.sessions.dropNode(node);
    this.credentials.removeNode(node);
    this.#bundles.delete(node);
    return this.#record(`remove_node ${node}`, before);
  }

  addHost(node: string, host: HostConf): ChangeResult {
    this.store.addHost(node, host);
    return this.#record(`add_node_host ${node} ${host.ip}:${host.port}`, touchedByNode(this.store, node));
  }

  removeHost(node: string, ip: string, port: number): ChangeResult {
    this.store.removeHost(node, ip, port);
    return this.#record(`remove_node_host ${node} ${ip}:${port}`, touchedByNode(this.store, node));
  }

  addKv(node: string, key: string, value: string): ChangeResult {
    this.store.addKv(node, key, value);
    return this.#record(`add_node_kv ${node} ${key}`, touchedByNode(this.store, node));
  }

  setKv(node: string, key: string, value: string): ChangeResult {
    this.store.setKv(node, key, value);
    return this.#record(`set_node_kv ${node} ${key}`, touchedByNode(this.store, node));
  }

  removeKv(node: string, key: string): ChangeResult {
    this.store.removeKv(node, key);
    return this.#record(`remove_node_kv ${node} ${key}`, touchedByNode(this.store, node));
  }

  // ---------------------------------------------------------------- apps

  addApp(a: AppConf): ChangeResult {
    this.store.addApp(a);
    return this.#record(`add_app ${a.app}`, touchedByApp(this.store, a.app));
  }

  setApp(app: string, patch: AppPatch): ChangeResult {
    this.store.setApp(app, patch);
    return this.#record(`set_app ${app}`, touchedByApp(this.store, app));
  }

  /** The app's package changed (`-a update_app`): re-read it and touch the app's nodes. */
  updateApp(app: string): ChangeResult & { sha256: string; size: number } {
    const a = this.store.app(app);
    const info = this.packages.refresh(a.bin);
    if (!info.sha256) throw new IbpError('IBP_ERR_REG_NO_PACKAGE', { bin: a.bin, app, dir: this.packages.dir });
    return { ...this.#record(`update_app ${app} sha256[${info.sha256}]`, touchedByApp(this.store, app)), ...info };
  }

  removeApp(app: string): ChangeResult & { projects: string[] } {
    const before = touchedByApp(this.store, app);
    const projects = this.store.removeApp(app);
    return { ...this.#record(`remove_app ${app}`, before), projects };
  }

  /**
   * A package file was added or replaced in so/ (the watcher). Every app using it is touched;
   * with `immediate` those nodes are distributed at once (IBP's 立即自动推导下发).
   */
  packageChanged(bin: string, immediate: boolean): { apps: string[]; touched: string[]; distributed: { node: string; version: number }[] } {
    const info = this.packages.refresh(bin);
    const { apps, nodes } = touchedByBin(this.store, bin);
    if (apps.length === 0) {
      this.log.info(`package ${bin} changed , no app uses it`);
      return { apps, touched: [], distributed: [] };
    }
    this.#record(`package ${bin} changed sha256[${info.sha256}] apps[${apps.join(' ')}]`, nodes);
    const distributed = immediate ? this.versions.distributeNodes(nodes) : [];
    if (immediate) this.log.info(`distribute , package ${bin} , nodes[${distributed.map((d) => `${d.node}:${d.version}`).join(' ')}]`);
    return { apps, touched: [...nodes], distributed };
  }

  // ---------------------------------------------------------------- projects

  addProject(p: ProjectConf): ChangeResult {
    this.store.addProject(p);
    return this.#record(`add_project ${p.project}`, touchedByProject(this.store, p.project));
  }

  setProject(project: string, patch: ProjectPatch): ChangeResult {
    const before = touchedByProject(this.store, project);
    this.store.project(project);
    this.store.setProject(project, patch);
    return this.#record(`set_project ${project}`, union(before, touchedByProject(this.store, project)));
  }

  removeProject(project: string): ChangeResult {
    this.store.project(project);
    const before = touchedByProject(this.store, project);
    this.store.removeProject(project);
    return this.#record(`remove_project ${project}`, before);
  }

  // ---------------------------------------------------------------- distribution

  distribute(): { ok: true; distributed: { node: string; version: number }[] } {
    const distributed = this.versions.distribute();
    this.log.info(`distribute_config , nodes[${distributed.map((d) => `${d.node}:${d.version}`).join(' ')}]`);
    return { ok: true, distributed };
  }

  download(node: string): { ok: true; node: string; version: number } {
    this.store.node(node);
    const version = this.versions.download(node);
    this.log.info(`download_config , node[${node}] version[${version}]`);
    return { ok: true, node, version };
  }

  // ---------------------------------------------------------------- persistence

  /** `-a save_config`: saves run one after another; each writes a snapshot taken when asked. */
  save(): Promise<SaveResult> {
    const snap = snapshotForSave(this.files, this.store.toData());
    const second = this.conf.misc.second_config_dump ? this.home.resolve(this.conf.misc.second_config_dump) : undefined;
    const run = this.#saving.catch(() => undefined).then(() => saveData(this.files, snap, second));
    this.#saving = run;
    return run.then((r) => {
      this.log.info(`save_config , files[${r.files.join(' ')}] images[${r.images.join(' ')}] second[${r.second.join(' ')}]`);
      return r;
    });
  }

  /** The `second_config_dump` schedule: write only the second copy (misc.second_config_dump). */
  dumpSecond(): Promise<string[]> {
    const dir = this.conf.misc.second_config_dump;
    if (!dir) return Promise.reject(new Error('misc.second_config_dump is not set: nothing to dump'));
    const snap = snapshotForSave(this.files, this.store.toData());
    const run = this.#saving.catch(() => undefined).then(() => saveSecond(this.files, snap, this.home.resolve(dir)));
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

  /** The bundle of a node as JSON text (cached until the data, the packages or the version change). */
  bundleJson(node: string): { json: string; version: number } {
    this.store.node(node);
    const version = this.versions.version(node);
    const key = `${this.store.generation}:${this.packages.generation}:${version}`;
    const hit = this.#bundles.get(node);
    if (hit && hit.key === key) return { json: hit.json, version };
    const json = JSON.stringify(this.bundle(node));
    this.#bundles.set(node, { key: `${this.store.generation}:${this.packages.generation}:${version}`, json });
    return { json, version };
  }

  /** N, its related nodes, and the apps of its projects with their packages' identity. */
  bundle(node: string): NodeBundle {
    const self = this.store.node(node);
    const nodes = [self, ...[...this.store.related(node)].map((n) => this.store.nodes.get(n)!)];
    const apps: AppWithPackage[] = [];
    for (const name of this.store.appsOfNode(node)) {
      const a = this.store.apps.get(name)!;
      apps.push({ ...a, ...this.packages.info(a.bin) });
    }
    return { epoch: this.versions.epoch, version: this.versions.version(node), this_node: node, nodes, apps };
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
