/**
 * Re-issuing credentials (`ibms -a rotate_credential --admin | --admin-ro | --node N`): the file is
 * rewritten atomically (0600) and the old credential is refused from the next request on. The
 * answer names the file, never the secret (read it there, or with `-s node_credential`).
 */
import type { FastifyPluginAsync } from 'fastify';
import { IbpError } from '../../lib/errors.js';
import type { Registry } from '../registry.js';
import { RotateBody, check } from '../schemas.js';

const admin = { config: { access: 'admin' as const } };

export function credentialRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.post('/credentials/rotate', admin, async (req) => {
      const b = check(RotateBody, req.body, 'request body');
      if (b.kind === 'node') {
        if (b.node === undefined) throw new IbpError('IBP_ERR_REG_INVALID', { detail: 'kind node needs "node": the node whose credential to re-issue' });
        reg.store.node(b.node);
        reg.credentials.ensureNode(b.node);
      } else if (b.node !== undefined) {
        throw new IbpError('IBP_ERR_REG_INVALID', { detail: `kind ${b.kind} takes no "node"` });
      }
      const file = reg.credentials.rotate(b.kind, b.node);
      reg.log.warn(`rotate_credential , kind[${b.kind}]${b.node ? ` node[${b.node}]` : ''} file[${file}] , the old credential is refused from now on`);
      return { ok: true, kind: b.kind, ...(b.node ? { node: b.node } : {}), credential_file: file };
    });
  };
}
