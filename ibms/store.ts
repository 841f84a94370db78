/**
 * The registry's data in memory: nodes, apps, projects (and each node's hosts and kvs), with the
 * indexes that derivation and bundles need, and the checks of every cross reference.
 *
 * The store is the only place that changes this data. Every mutation validates completely first
 * and only then changes anything, so a refused command leaves the store as it was. Shapes of the
 * inputs (names, ports, timeouts) are checked by the schemas of lib/config/model.ts before they
 * get here; this file checks what a schema cannot: existence, duplicates and references.
 *
 * Rules (docs/ibms.md):
 * - a project names only existing nodes and apps, each at most once per list;
 * - a host (ip:port) belongs to at most one node;
 * - an app's server_node, when set, is an existing node;
 * - a node still named by a project or by an app's server_node cannot be removed;
 * - removing an app also removes it from every project holding it.
 */
import { IbpError } from '../lib/errors.js';
import type { AppConf, HostConf, NodeConf, ProjectConf } from '../lib/config/model.js';

/** The three config files' contents. */
export interface ConfigData {
  nodes: NodeConf[];
  apps: AppConf[];
  projects: ProjectConf[];
}

/** Which file each part came from, so load errors name it. */
export interface DataFiles {
  nodes: string;
  apps: string;
  projects: string;
}

export type NodePatch = Partial<Pick<NodeConf, 'invalid' | 'key_exp'>>;
export type AppPatch = Partial<Omit<AppConf, 'app'>>;
export type ProjectPatch = Partial<Omit<ProjectConf, 'project'>>;

const hostKey = (ip: string, port: number): string => `${ip}:${port}`;

/*
 * Indexes map a name to a small array (not a Set): most apps are in one project and most nodes
 * in a few, and a 100,000-app registry then loads without allocating 100,000 Sets.
 */
function addTo(index: Map<string, string[]>, key: string, value: string): void {
  const a = index.get(key);
  if (!a) index.set(key, [value]);
  else if (!a.includes(value)) a.push(value);
}

function removeFrom(index: Map<string, string[]>, key: string, value: string): void {
  const a = index.get(key);
  if (!a) return;
  const i = a.indexOf(value);
  if (i >= 0) a.splice(i, 1);
  if (a.length === 0) index.delete(key);
}

const NONE: readonly string[] = Object.freeze([]);

function listUsers(kind: string, names: Iterable<string>, max = 5): string {
  const all = [...names];
  const shown = all.slice(0, max).join(', ');
  return `${kind} ${shown}${all.length > max ? ` and ${all.length - max} more` : ''}`;
}

export class Store {
  readonly nodes = new Map<string, NodeConf>();
  readonly apps = new Map<string, AppConf>();
  readonly projects = new Map<string, ProjectConf>();
  /** Bumped by every mutation: caches of derived answers key on it. */
  generation = 0;

  /** node → projects naming it (as server or client node). */
  readonly #nodeProjects = new Map<string, string[]>();
  /** app → projects holding it. */
  readonly #appProjects = new Map<string, string[]>();
  /** node → apps whose server_node it is. */
  readonly #serverNodeApps = new Map<string, string[]>();
  /** "ip:port" → node. */
  readonly #hosts = new Map<string, string>();
  /** bin → apps using it. */
  readonly #bins = new Map<string, string[]>();

  /**
   * Build a store from file contents (already schema-validated). Reference errors throw
   * IBP_ERR_CFG_INVALID naming the file and the key, e.g. `/projects/3/server_nodes/1`.
   */
  static fromData(data: ConfigData, files: DataFiles = { nodes: 'nodes', apps: 'apps', projects: 'projects' }): Store {
    const s = new Store();
    const bad = (file: string, key: string, detail: string): never => {
      throw new IbpError('IBP_ERR_CFG_INVALID', { file, key, detail });
    };
    data.nodes.forEach((n, i) => {
      if (s.nodes.has(n.node)) bad(files.nodes, `/nodes/${i}/node`, `repeats node ${n.node}`);
      const seen = new Set<string>();
      n.hosts.forEach((h, j) => {
        const k = hostKey(h.ip, h.port);
        const owner = s.#hosts.get(k) ?? (seen.has(k) ? n.node : undefined);
        if (owner !== undefined) bad(files.nodes, `/nodes/${i}/hosts/${j}`, `repeats host ${k} (already a host of node ${owner})`);
        seen.add(k);
      });
      s.#insertNode(n);
    });
    data.apps.forEach((a, i) => {
      if (s.apps.has(a.app)) bad(files.apps, `/apps/${i}/app`, `repeats app ${a.app}`);
      if (a.server_node && !s.nodes.has(a.server_node)) bad(files.apps, `/apps/${i}/server_node`, `names node ${a.server_node}, which is not in ${files.nodes}`);
      s.#insertApp(a);
    });
    data.projects.forEach((p, i) => {
      if (s.projects.has(p.project)) bad(files.projects, `/projects/${i}/project`, `repeats project ${p.project}`);
      for (const list of ['server_nodes', 'client_nodes', 'apps'] as const) {
        const seen = new Set<string>();
        p[list].forEach((name, j) => {
          const known = list === 'apps' ? s.apps.has(name) : s.nodes.has(name);
          if (!known) bad(files.projects, `/projects/${i}/${list}/${j}`, `names ${list === 'apps' ? 'app' : 'node'} ${name}, which is not in ${list === 'apps' ? files.apps : files.nodes}`);
          if (seen.has(name)) bad(files.projects, `/projects/${i}/${list}/${j}`, `repeats ${name}`);
          seen.add(name);
        });
      }
      s.#insertProject(p);
    });
    return s;
  }

  /**
   * Build a store from data known to be valid (a .bin image built from a store): no reference
   * checks, only the indexes.
   */
  static fromTrustedData(data: ConfigData): Store {
    const s = new Store();
    for (const n of data.nodes) s.#insertNode(n);
    for (const a of data.apps) s.#insertApp(a);
    for (const p of data.projects) s.#insertProject(p);
    return s;
  }

  /** The data as the config files hold it (live objects: serialise before the next mutation). */
  toData(): ConfigData {
    return { nodes: [...this.nodes.values()], apps: [...this.apps.values()], projects: [...this.projects.values()] };
  }

  #insertNode(n: NodeConf): void {
    this.nodes.set(n.node, n);
    for (const h of n.hosts) this.#hosts.set(hostKey(h.ip, h.port), n.node);
  }

  #insertApp(a: AppConf): void {
    this.apps.set(a.app, a);
    addTo(this.#bins, a.bin, a.app);
    if (a.server_node) addTo(this.#serverNodeApps, a.server_node, a.app);
  }

  #insertProject(p: ProjectConf): void {
    this.projects.set(p.project, p);
    for (const n of p.server_nodes) addTo(this.#nodeProjects, n, p.project);
    for (const n of p.client_nodes) addTo(this.#nodeProjects, n, p.project);
    for (const a of p.apps) addTo(this.#appProjects, a, p.project);
  }

  #unindexProject(p: ProjectConf): void {
    for (const n of p.server_nodes) removeFrom(this.#nodeProjects, n, p.project);
    for (const n of p.client_nodes) removeFrom(this.#nodeProjects, n, p.project);
    for (const a of p.apps) removeFrom(this.#appProjects, a, p.project);
  }

  #changed(): void {
    this.generation++;
  }

  // ---------------------------------------------------------------- queries

  node(name: string): NodeConf {
    const n = this.nodes.get(name);
    if (!n) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'node', name });
    return n;
  }

  app(name: string): AppConf {
    const a = this.apps.get(name);
    if (!a) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'app', name });
    return a;
  }

  project(name: string): ProjectConf {
    const p = this.projects.get(name);
    if (!p) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'project', name });
    return p;
  }

  /** Projects naming the node (as server or client). */
  projectsOfNode(node: string): readonly string[] {
    return this.#nodeProjects.get(node) ?? NONE;
  }

  /** Projects holding the app. */
  projectsOfApp(app: string): readonly string[] {
    return this.#appProjects.get(app) ?? NONE;
  }

  /** Apps using a package file. */
  appsOfBin(bin: string): readonly string[] {
    return this.#bins.get(bin) ?? NONE;
  }

  /** The node owning a host, if any. */
  hostOwner(ip: string, port: number): string | undefined {
    return this.#hosts.get(hostKey(ip, port));
  }

  /** Nodes sharing a project with `node` (server or client side), without `node` itself. */
  related(node: string): Set<string> {
    const out = new Set<string>();
    for (const pname of this.projectsOfNode(node)) {
      const p = this.projects.get(pname)!;
      for (const n of p.server_nodes) out.add(n);
      for (const n of p.client_nodes) out.add(n);
    }
    out.delete(node);
    return out;
  }

  /** Apps of every project the node belongs to (each once, in the projects' order). */
  appsOfNode(node: string): Set<string> {
    const out = new Set<string>();
    for (const pname of this.projectsOfNode(node)) for (const a of this.projects.get(pname)!.apps) out.add(a);
    return out;
  }

  /** Whether `node` may download package `bin`: it serves a project holding an app of that bin, or is such an app's server_node. */
  entitledToBin(node: string, bin: string): boolean {
    for (const app of this.appsOfBin(bin)) {
      if (this.apps.get(app)!.server_node === node) return true;
      for (const pname of this.projectsOfApp(app)) if (this.projects.get(pname)!.server_nodes.includes(node)) return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- nodes

  addNode(n: NodeConf): void {
    if (this.nodes.has(n.node)) throw new IbpError('IBP_ERR_REG_EXISTS', { kind: 'node', name: n.node });
    const seen = new Set<string>();
    for (const h of n.hosts) {
      const k = hostKey(h.ip, h.port);
      const owner = this.#hosts.get(k) ?? (seen.has(k) ? n.node : undefined);
      if (owner !== undefined) throw new IbpError('IBP_ERR_REG_HOST_TAKEN', { host: k, node: owner });
      seen.add(k);
    }
    this.#insertNode({ ...n, hosts: n.hosts.map((h) => ({ ...h })), kvs: { ...n.kvs } });
    this.#changed();
  }

  setNode(name: string, patch: NodePatch): void {
    const n = this.node(name);
    if (patch.invalid !== undefined) n.invalid = patch.invalid;
    if (patch.key_exp !== undefined) n.key_exp = patch.key_exp;
    this.#changed();
  }

  removeNode(name: string): void {
    const n = this.node(name);
    const projects = this.projectsOfNode(name);
    if (projects.length > 0) throw new IbpError('IBP_ERR_REG_IN_USE', { kind: 'node', name, users: listUsers('project', projects) });
    const apps = this.#serverNodeApps.get(name);
    if (apps && apps.length > 0) throw new IbpError('IBP_ERR_REG_IN_USE', { kind: 'node', name, users: listUsers('app (as server_node)', apps) });
    for (const h of n.hosts) this.#hosts.delete(hostKey(h.ip, h.port));
    this.nodes.delete(name);
    this.#changed();
  }

  addHost(name: string, host: HostConf): void {
    const n = this.node(name);
    const k = hostKey(host.ip, host.port);
    const owner = this.#hosts.get(k);
    if (owner !== undefined) throw new IbpError('IBP_ERR_REG_HOST_TAKEN', { host: k, node: owner });
    if (n.hosts.length >= 256) throw new IbpError('IBP_ERR_REG_INVALID', { detail: `node ${name} has 256 hosts already, the most a node may have` });
    n.hosts.push({ ...host });
    this.#hosts.set(k, name);
    this.#changed();
  }

  removeHost(name: string, ip: string, port: number): void {
    const n = this.node(name);
    const i = n.hosts.findIndex((h) => h.ip === ip && h.port === port);
    if (i < 0) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'host', name: `${hostKey(ip, port)} of node ${name}` });
    n.hosts.splice(i, 1);
    this.#hosts.delete(hostKey(ip, port));
    this.#changed();
  }

  addKv(name: string, key: string, value: string): void {
    const n = this.node(name);
    if (Object.hasOwn(n.kvs, key)) throw new IbpError('IBP_ERR_REG_EXISTS', { kind: 'node_kv', name: `${name}/${key}` });
    n.kvs[key] = value;
    this.#changed();
  }

  /** Set a kv, creating it when absent (IBP's set_node_kv is how kvs are usually written). */
  setKv(name: string, key: string, value: string): void {
    const n = this.node(name);
    n.kvs[key] = value;
    this.#changed();
  }

  removeKv(name: string, key: string): void {
    const n = this.node(name);
    if (!Object.hasOwn(n.kvs, key)) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'node_kv', name: `${name}/${key}` });
    delete n.kvs[key];
    this.#changed();
  }

  // ---------------------------------------------------------------- apps

  #checkServerNode(app: string, serverNode: string | undefined): void {
    if (serverNode && !this.nodes.has(serverNode)) throw new IbpError('IBP_ERR_REG_INVALID', { detail: `app ${app}: server_node ${serverNode} is not a node (add_node first)` });
  }

  addApp(a: AppConf): void {
    if (this.apps.has(a.app)) throw new IbpError('IBP_ERR_REG_EXISTS', { kind: 'app', name: a.app });
    this.#checkServerNode(a.app, a.server_node);
    this.#insertApp({ ...a });
    this.#changed();
  }

  setApp(name: string, patch: AppPatch): void {
    const a = this.app(name);
    this.#checkServerNode(name, patch.server_node);
    removeFrom(this.#bins, a.bin, name);
    if (a.server_node) removeFrom(this.#serverNodeApps, a.server_node, name);
    for (const [k, v] of Object.entries(patch)) if (v !== undefined) (a as Record<string, unknown>)[k] = v;
    addTo(this.#bins, a.bin, name);
    if (a.server_node) addTo(this.#serverNodeApps, a.server_node, name);
    this.#changed();
  }

  /** Remove an app and drop it from every project holding it; returns those projects. */
  removeApp(name: string): string[] {
    const a = this.app(name);
    const projects = [...this.projectsOfApp(name)];
    for (const pname of projects) {
      const p = this.projects.get(pname)!;
      p.apps = p.apps.filter((x) => x !== name);
    }
    this.#appProjects.delete(name);
    removeFrom(this.#bins, a.bin, name);
    if (a.server_node) removeFrom(this.#serverNodeApps, a.server_node, name);
    this.apps.delete(name);
    this.#changed();
    return projects;
  }

  // ---------------------------------------------------------------- projects

  #checkProjectLists(p: ProjectConf): void {
    for (const list of ['server_nodes', 'client_nodes', 'apps'] as const) {
      const seen = new Set<string>();
      for (const name of p[list]) {
        const isApp = list === 'apps';
        if (!(isApp ? this.apps.has(name) : this.nodes.has(name))) {
          throw new IbpError('IBP_ERR_REG_INVALID', { detail: `project ${p.project}: ${list} names unknown ${isApp ? 'app' : 'node'} ${name} (add_${isApp ? 'app' : 'node'} first)` });
        }
        if (seen.has(name)) throw new IbpError('IBP_ERR_REG_INVALID', { detail: `project ${p.project}: ${list} lists ${name} twice` });
        seen.add(name);
      }
    }
  }

  addProject(p: ProjectConf): void {
    if (this.projects.has(p.project)) throw new IbpError('IBP_ERR_REG_EXISTS', { kind: 'project', name: p.project });
    const copy = { project: p.project, server_nodes: [...p.server_nodes], client_nodes: [...p.client_nodes], apps: [...p.apps] };
    this.#checkProjectLists(copy);
    this.#insertProject(copy);
    this.#changed();
  }

  setProject(name: string, patch: ProjectPatch): void {
    const old = this.project(name);
    const next: ProjectConf = {
      project: name,
      server_nodes: [...(patch.server_nodes ?? old.server_nodes)],
      client_nodes: [...(patch.client_nodes ?? old.client_nodes)],
      apps: [...(patch.apps ?? old.apps)],
    };
    this.#checkProjectLists(next);
    this.#unindexProject(old);
    this.#insertProject(next);
    this.#changed();
  }

  removeProject(name: string): void {
    const p = this.project(name);
    this.#unindexProject(p);
    this.projects.delete(name);
    this.#changed();
  }
}
