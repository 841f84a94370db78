/**
 * Agent routes (ARCHITECTURE §4.1), for ibma and ibas of a node, with that node's credential:
 *
 * - GET  /v1/agent/config?node=N&index=V&epoch=E&wait=S  blocking read of N's published bundle;
 * - GET  /v1/agent/packages/:bin                          a package's bytes, to entitled nodes;
 * - POST /v1/agent/heartbeat                              `{role, node, ip?, port?, pid, load?, version?, epoch?}`.
 * - POST /v1/agent/session/end                            `{role, node, ip?, port?, pid}`: a graceful stop leaves at once.
 * - GET  /v1/agent/node_keys/:node                        the node's key pairs with private halves: its own credential only.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { IbpError } from '../../lib/errors.js';
import type { Registry } from '../registry.js';
import { sendJsonText } from '../server.js';
import { sendPrivateNodeKeys } from './node-keys.js';
import { BinParam, ConfigQuery, HeartbeatBody, SessionEndBody, check } from '../schemas.js';

const agent = { config: { access: 'node' as const } };

export const HEADER_INDEX = 'x-ibp-index';
export const HEADER_EPOCH = 'x-ibp-epoch';
export const HEADER_SHA256 = 'x-ibp-sha256';

/** The node credential may act only for its own node; the admin for any. */
function mayActFor(req: FastifyRequest, node: string, what: string): void {
  const p = req.principal!;
  if (p.kind === 'node' && p.node !== node) throw new IbpError('IBP_ERR_REG_FORBIDDEN', { who: `node ${p.node}`, what: `${what} of node ${node}` });
}

export function agentRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get('/config', agent, async (req, reply) => {
      const q = check(ConfigQuery, req.query, 'query');
      mayActFor(req, q.node, 'the config');
      reg.store.node(q.node);
      const index = q.index === undefined ? 0 : Number(q.index);
      const epoch = q.epoch ?? '';
      const waitMs = Math.min(q.wait === undefined ? 0 : Number(q.wait), reg.conf.session.max_wait_seconds) * 1000;
      // a node never distributed has nothing published yet: hold the watch until it is
      const undistributed = reg.versions.version(q.node) === 0;
      if (waitMs > 0 && (undistributed || reg.versions.isCurrent(q.node, index, epoch))) {
        const ended = reg.sessions.watchStarted(q.node, req.ip);
        const gone = new AbortController();
        const onClose = (): void => gone.abort();
        reply.raw.once('close', onClose);
        try {
          if (undistributed) await reg.versions.wait(q.node, 0, reg.versions.epoch, waitMs, gone.signal);
          else await reg.versions.wait(q.node, index, epoch, waitMs, gone.signal);
        } finally {
          reply.raw.off('close', onClose);
          ended();
        }
        if (gone.signal.aborted) return reply.hijack();
      }
      const { json, version } = reg.bundleJson(q.node);
      reply.header(HEADER_INDEX, String(version)).header(HEADER_EPOCH, reg.versions.epoch);
      return sendJsonText(reply, json);
    });

    app.get('/packages/:bin', agent, async (req, reply) => {
      const { bin } = check(BinParam, req.params, 'path');
      const p = req.principal!;
      if (p.kind === 'node' && !reg.store.entitledToBin(p.node, bin)) {
        reg.log.warn(`package refused , node[${p.node}] bin[${bin}]`);
        throw new IbpError('IBP_ERR_REG_FORBIDDEN', { who: `node ${p.node}`, what: `package ${bin} (it serves no project holding an app of it)` });
      }
      if (reg.store.appsOfBin(bin).length === 0) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'package', name: bin });
      const got = reg.packages.read(bin);
      if (!got) throw new IbpError('IBP_ERR_REG_NO_PACKAGE', { bin, app: [...reg.store.appsOfBin(bin)].join(','), dir: reg.packages.dir });
      reg.log.info(`package sent , ${p.kind === 'node' ? `node[${p.node}]` : 'admin'} bin[${bin}] size[${got.bytes.length}] sha256[${got.sha256}]`);
      return reply.type('application/octet-stream').header(HEADER_SHA256, got.sha256).send(got.bytes);
    });

    app.get('/node_keys/:node', agent, async (req) => sendPrivateNodeKeys(reg, req));

    app.post('/heartbeat', agent, async (req) => {
      const hb = check(HeartbeatBody, req.body, 'request body');
      mayActFor(req, hb.node, 'heartbeats');
      reg.store.node(hb.node);
      reg.sessions.heartbeat(hb, req.ip);
      return { ok: true, expire_seconds: reg.conf.session.expire_seconds, epoch: reg.versions.epoch, version: reg.versions.version(hb.node) };
    });

    app.post('/session/end', agent, async (req) => {
      const b = check(SessionEndBody, req.body, 'request body');
      mayActFor(req, b.node, 'sessions');
      const s = reg.sessions.end(b, req.ip);
      if (s) reg.log.info(`session ended , ${s.role} node[${s.node}] ip[${s.ip}] port[${s.port}] pid[${s.pid}]`);
      return { ok: true, ended: s !== undefined };
    });
  };
}
