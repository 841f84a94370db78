/**
 * Who may call what on the ibms API: the access classes, the matrix of what each kind of
 * credential gets on each class, and the table of every route with its class. The API fails
 * closed: a route registered without a class, with an unknown class, or missing from (or
 * disagreeing with) {@link ROUTE_ACCESS} makes the server refuse to start (server.ts, onRoute).
 * The one open class, `public`, holds only the web console's page and login form (no data); the
 * console's data stream (`console`) needs a signed-in session (cookie, ibms/console/routes.ts);
 * `metrics` also takes ibms.conf `metrics.token` (a scraper's own token).
 *
 * To add a route: declare `config: { access: '<class>' }` on it, add a row to ROUTE_ACCESS, and
 * the same row to docs/ARCHITECTURE.md §4.2 (test/ibms/access.test.ts checks all three agree and
 * drives every route through the matrix).
 */

/** The access classes. */
export const ACCESS_CLASSES = ['admin', 'admin-read', 'node', 'metrics', 'public', 'console'] as const;
export type Access = (typeof ACCESS_CLASSES)[number];

/** Who presents a request: no or a wrong credential, a node's, the read-only admin's, the admin's. */
export const CALLERS = ['none', 'node', 'admin-ro', 'admin'] as const;
export type Caller = (typeof CALLERS)[number];

/** `allow`: the request reaches the route (which may still refuse, e.g. a node acting for another). */
export type Verdict = 'allow' | 401 | 403;

/** The matrix: rows are classes, columns are callers. */
export const ACCESS_MATRIX: Readonly<Record<Access, Readonly<Record<Caller, Verdict>>>> = {
  /** changes, secrets (credentials), anything mutating */
  admin: { none: 401, node: 403, 'admin-ro': 403, admin: 'allow' },
  /** read-only admin views: status, lists, sessions */
  'admin-read': { none: 401, node: 403, 'admin-ro': 'allow', admin: 'allow' },
  /** agent endpoints: a node's own credential (for itself only), or the admin's */
  node: { none: 401, node: 'allow', 'admin-ro': 403, admin: 'allow' },
  /** Prometheus text: the admins, or ibms.conf metrics.token (checked before the matrix) */
  metrics: { none: 401, node: 403, 'admin-ro': 'allow', admin: 'allow' },
  /** the console's page and login form: no data */
  public: { none: 'allow', node: 'allow', 'admin-ro': 'allow', admin: 'allow' },
  /** the console's live data: a signed-in console session (cookie) only, never a bearer credential */
  console: { none: 401, node: 401, 'admin-ro': 401, admin: 401 },
};

export interface RouteAccess {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  access: Access;
}

/** Every route of the API with its class (fastify's URL syntax). */
export const ROUTE_ACCESS: readonly RouteAccess[] = [
  { method: 'GET', url: '/v1/agent/config', access: 'node' },
  { method: 'GET', url: '/v1/agent/packages/:bin', access: 'node' },
  { method: 'POST', url: '/v1/agent/heartbeat', access: 'node' },
  { method: 'POST', url: '/v1/agent/session/end', access: 'node' },
  { method: 'GET', url: '/v1/agent/node_keys/:node', access: 'node' },
  { method: 'GET', url: '/v1/status', access: 'admin-read' },
  { method: 'GET', url: '/v1/sessions', access: 'admin-read' },
  { method: 'GET', url: '/v1/nodes', access: 'admin-read' },
  { method: 'POST', url: '/v1/nodes', access: 'admin' },
  { method: 'PATCH', url: '/v1/nodes/:node', access: 'admin' },
  { method: 'DELETE', url: '/v1/nodes/:node', access: 'admin' },
  { method: 'POST', url: '/v1/nodes/:node/hosts', access: 'admin' },
  { method: 'DELETE', url: '/v1/nodes/:node/hosts/:ip/:port', access: 'admin' },
  { method: 'GET', url: '/v1/nodes/:node/credential', access: 'admin' },
  { method: 'GET', url: '/v1/nodes_kv', access: 'admin-read' },
  { method: 'POST', url: '/v1/nodes/:node/kvs', access: 'admin' },
  { method: 'PUT', url: '/v1/nodes/:node/kvs/:key', access: 'admin' },
  { method: 'DELETE', url: '/v1/nodes/:node/kvs/:key', access: 'admin' },
  { method: 'GET', url: '/v1/apps', access: 'admin-read' },
  { method: 'POST', url: '/v1/apps', access: 'admin' },
  { method: 'PATCH', url: '/v1/apps/:app', access: 'admin' },
  { method: 'POST', url: '/v1/apps/:app/update', access: 'admin' },
  { method: 'DELETE', url: '/v1/apps/:app', access: 'admin' },
  { method: 'GET', url: '/v1/projects', access: 'admin-read' },
  { method: 'POST', url: '/v1/projects', access: 'admin' },
  { method: 'PATCH', url: '/v1/projects/:project', access: 'admin' },
  { method: 'DELETE', url: '/v1/projects/:project', access: 'admin' },
  { method: 'GET', url: '/v1/nodes_changed', access: 'admin-read' },
  { method: 'POST', url: '/v1/config/distribute', access: 'admin' },
  { method: 'POST', url: '/v1/config/download', access: 'admin' },
  { method: 'POST', url: '/v1/config/save', access: 'admin' },
  { method: 'POST', url: '/v1/config/build', access: 'admin' },
  { method: 'POST', url: '/v1/credentials/rotate', access: 'admin' },
  { method: 'GET', url: '/v1/node_keys', access: 'admin-read' },
  { method: 'POST', url: '/v1/nodes/:node/keys/rotate', access: 'admin' },
  { method: 'GET', url: '/metrics', access: 'metrics' },
  { method: 'GET', url: '/console', access: 'public' },
  { method: 'POST', url: '/console/login', access: 'public' },
  { method: 'GET', url: '/console/events', access: 'console' },
];

export function isAccess(v: unknown): v is Access {
  return typeof v === 'string' && (ACCESS_CLASSES as readonly string[]).includes(v);
}

/** The class ROUTE_ACCESS gives a route, if it lists it. */
export function tableAccess(method: string, url: string): Access | undefined {
  return ROUTE_ACCESS.find((r) => r.method === method && r.url === url)?.access;
}

/**
 * Check a route being registered; returns why it is refused, or undefined when it is fine.
 * `declared` is its `config.access`.
 */
export function routeProblem(method: string, url: string, declared: unknown): string | undefined {
  if (declared === undefined) return `route ${method} ${url} declares no access class (config.access: one of ${ACCESS_CLASSES.join(', ')})`;
  if (!isAccess(declared)) return `route ${method} ${url} declares unknown access class ${JSON.stringify(declared)} (one of ${ACCESS_CLASSES.join(', ')})`;
  const listed = tableAccess(method, url);
  if (listed === undefined) return `route ${method} ${url} is not in ROUTE_ACCESS (ibms/access.ts): add it there and to docs/ARCHITECTURE.md §4.2`;
  if (listed !== declared) return `route ${method} ${url} declares ${declared} but ROUTE_ACCESS says ${listed}`;
  return undefined;
}
