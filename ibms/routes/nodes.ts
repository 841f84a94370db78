/** Admin routes for nodes, their hosts and their kvs (ibms -s nodes|nodes_kv, -a *_node*). */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from '../registry.js';
import { AddKvBody, AddNodeBody, FilterQuery, HostBody, HostParams, NameParam, SetKvBody, SetNodeBody, check } from '../schemas.js';

const admin = { config: { access: 'admin' as const } };
const adminRead = { config: { access: 'admin-read' as const } };
const NodeParam = NameParam('node');
const KvParams = NameParam('node');

export function nodeRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get('/nodes', adminRead, async (req) => {
      const q = check(FilterQuery, req.query, 'query');
      return { nodes: q.node ? [reg.store.node(q.node)] : [...reg.store.nodes.values()] };
    });

    app.post('/nodes', admin, async (req, reply) => {
      const body = check(AddNodeBody, req.body, 'request body');
      return reply.status(201).send(reg.addNode(body));
    });

    app.patch('/nodes/:node', admin, async (req) => {
      const { node } = check(NodeParam, req.params, 'path');
      return reg.setNode(node, check(SetNodeBody, req.body, 'request body'));
    });

    app.delete('/nodes/:node', admin, async (req) => {
      const { node } = check(NodeParam, req.params, 'path');
      return reg.removeNode(node);
    });

    app.post('/nodes/:node/hosts', admin, async (req, reply) => {
      const { node } = check(NodeParam, req.params, 'path');
      return reply.status(201).send(reg.addHost(node, check(HostBody, req.body, 'request body')));
    });

    app.delete('/nodes/:node/hosts/:ip/:port', admin, async (req) => {
      const p = check(HostParams, req.params, 'path');
      const port = Number(p.port);
      if (port < 1 || port > 65535) check(HostBody, { ip: p.ip, port }, 'path');
      return reg.removeHost(p.node, p.ip, port);
    });

    app.get('/nodes_kv', adminRead, async (req) => {
      const q = check(FilterQuery, req.query, 'query');
      const nodes = q.node ? [reg.store.node(q.node)] : [...reg.store.nodes.values()];
      return { kvs: nodes.flatMap((n) => Object.entries(n.kvs).map(([key, value]) => ({ node: n.node, key, value }))) };
    });

    app.post('/nodes/:node/kvs', admin, async (req, reply) => {
      const { node } = check(NodeParam, req.params, 'path');
      const { key, value } = check(AddKvBody, req.body, 'request body');
      return reply.status(201).send(reg.addKv(node, key, value));
    });

    app.put('/nodes/:node/kvs/:key', admin, async (req) => {
      const { node } = check(KvParams, req.params as { node: string }, 'path');
      const { key } = check(NameParam('key'), { key: (req.params as { key: string }).key }, 'path');
      return reg.setKv(node, key, check(SetKvBody, req.body, 'request body').value);
    });

    app.delete('/nodes/:node/kvs/:key', admin, async (req) => {
      const { node } = check(KvParams, req.params as { node: string }, 'path');
      const { key } = check(NameParam('key'), { key: (req.params as { key: string }).key }, 'path');
      return reg.removeKv(node, key);
    });

    app.get('/nodes/:node/credential', admin, async (req) => {
      const { node } = check(NodeParam, req.params, 'path');
      reg.store.node(node);
      return { node, credential: reg.credentials.ensureNode(node) };
    });
  };
}
