/**
 * Node keys (ibms/node-keys.ts, docs/security.md):
 *
 * - GET  /v1/node_keys?node=N             public halves with enable/disable times (`-s node_keys`);
 * - POST /v1/nodes/:node/keys/rotate      start a rotation (`-a rotate_node_key --node N`);
 * - GET  /v1/agent/node_keys/:node        the node's pairs WITH private halves: only the node's own
 *                                         credential (its agent); every other caller gets 403,
 *                                         the admin included (agentNodeKeyRoute, in routes/agent.ts).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { IbpError } from '../../lib/errors.js';
import type { Registry } from '../registry.js';
import { FilterQuery, NameParam, check } from '../schemas.js';

const admin = { config: { access: 'admin' as const } };
const adminRead = { config: { access: 'admin-read' as const } };
const NodeParam = NameParam('node');

export function nodeKeyRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get('/node_keys', adminRead, async (req) => {
      const q = check(FilterQuery, req.query, 'query');
      const nodes = q.node ? [reg.store.node(q.node).node] : [...reg.store.nodes.keys()];
      return { keys: nodes.flatMap((n) => reg.nodeKeys.publicKeys(n)) };
    });

    app.post('/nodes/:node/keys/rotate', admin, async (req) => {
      const { node } = check(NodeParam, req.params, 'path');
      return reg.rotateNodeKey(node);
    });
  };
}

/** The handler of GET /v1/agent/node_keys/:node (registered with the agent routes). */
export function sendPrivateNodeKeys(reg: Registry, req: FastifyRequest): { node: string; keys: ReturnType<Registry['nodeKeys']['privateKeys']> } {
  const { node } = check(NodeParam, req.params, 'path');
  const p = req.principal!;
  if (p.kind !== 'node' || p.node !== node) {
    const who = p.kind === 'node' ? `node ${p.node}` : p.kind;
    reg.log.warn(`node private keys refused , who[${who}] node[${node}]`);
    throw new IbpError('IBP_ERR_REG_FORBIDDEN', { who, what: `the private keys of node ${node} (only that node's own credential gets them)` });
  }
  reg.store.node(node);
  const keys = reg.nodeKeys.privateKeys(node);
  reg.log.info(`node private keys sent , node[${node}] kcv[${keys.map((k) => k.kcv).join(' ')}] remote[${req.ip}]`);
  return { node, keys };
}
