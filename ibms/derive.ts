/**
 * Derivation: which nodes a change touches (IBP's 自动推导). A node's bundle holds the node, its
 * related nodes (every node sharing a project with it) and the apps of its projects, so:
 *
 * | change                              | touched nodes                                       |
 * |-------------------------------------|-----------------------------------------------------|
 * | node, host or kv of node N          | N and every node related to N                       |
 * | app A (desc, bin, timeouts, package)| server and client nodes of every project holding A  |
 * | project P                           | server and client nodes of P                        |
 *
 * A change that moves membership (set_project, remove_app) is derived both before and after it,
 * and the union is recorded: a node that leaves a project must learn it too.
 */
import type { Store } from './store.js';

/** N and every node related to N. */
export function touchedByNode(store: Store, node: string): Set<string> {
  const out = new Set<string>(store.nodes.has(node) ? [node] : []);
  for (const n of store.related(node)) out.add(n);
  return out;
}

/** Server and client nodes of every project holding the app. */
export function touchedByApp(store: Store, app: string): Set<string> {
  const out = new Set<string>();
  for (const pname of store.projectsOfApp(app)) addProjectNodes(store, pname, out);
  return out;
}

/** Apps using a package file, and the nodes their change touches. */
export function touchedByBin(store: Store, bin: string): { apps: string[]; nodes: Set<string> } {
  const apps = [...store.appsOfBin(bin)];
  const nodes = new Set<string>();
  for (const a of apps) for (const n of touchedByApp(store, a)) nodes.add(n);
  return { apps, nodes };
}

/** Server and client nodes of a project (empty when it does not exist). */
export function touchedByProject(store: Store, project: string): Set<string> {
  return addProjectNodes(store, project, new Set());
}

function addProjectNodes(store: Store, project: string, out: Set<string>): Set<string> {
  const p = store.projects.get(project);
  if (!p) return out;
  for (const n of p.server_nodes) out.add(n);
  for (const n of p.client_nodes) out.add(n);
  return out;
}

export function union(...sets: Iterable<string>[]): Set<string> {
  const out = new Set<string>();
  for (const s of sets) for (const x of s) out.add(x);
  return out;
}
