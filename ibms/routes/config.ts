/**
 * Admin routes for distribution, persistence and the daemon's state: -s nodes_changed|sessions|status,
 * -a distribute_config|download_config|save_config|build_config.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from '../registry.js';
import { DownloadBody, check } from '../schemas.js';

const admin = { config: { access: 'admin' as const } };
const adminRead = { config: { access: 'admin-read' as const } };

export function configRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get('/nodes_changed', adminRead, async () => ({ nodes: reg.versions.changed() }));

    app.post('/config/distribute', admin, async () => reg.distribute());

    app.post('/config/download', admin, async (req) => reg.download(check(DownloadBody, req.body, 'request body').node));

    app.post('/config/save', admin, async () => ({ ok: true, ...(await reg.save()) }));

    app.post('/config/build', admin, async () => ({ ok: true, images: await reg.build() }));

    app.get('/sessions', adminRead, async () => {
      const now = Date.now();
      return {
        sessions: reg.sessions.list().map((s) => {
          // an agent's config is current when it holds this epoch's version of its node
          const current_version = reg.store.nodes.has(s.node) ? reg.versions.version(s.node) : null;
          const current = s.version === undefined ? null : s.epoch === reg.versions.epoch && s.version === current_version;
          return { ...s, idle_seconds: Math.round((now - s.last_seen) / 100) / 10, current_version, current };
        }),
      };
    });

    app.get('/status', adminRead, async () => reg.status());
  };
}
