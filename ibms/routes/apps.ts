/** Admin routes for apps (ibms -s apps, -a add_app|set_app|update_app|remove_app). */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from '../registry.js';
import { AddAppBody, FilterQuery, NameParam, SetAppBody, check } from '../schemas.js';

const admin = { config: { access: 'admin' as const } };
const adminRead = { config: { access: 'admin-read' as const } };
const AppParam = NameParam('app');

export function appRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get('/apps', adminRead, async (req) => {
      const q = check(FilterQuery, req.query, 'query');
      const apps = q.app ? [reg.store.app(q.app)] : [...reg.store.apps.values()];
      return { apps: apps.map((a) => ({ ...a, ...reg.packages.info(a.bin) })) };
    });

    app.post('/apps', admin, async (req, reply) => {
      const b = check(AddAppBody, req.body, 'request body');
      return reply.status(201).send(reg.addApp({ ...b, timeout2: b.timeout2 ?? 0, invalid: b.invalid ?? 0, server_node: b.server_node ?? '' }));
    });

    app.patch('/apps/:app', admin, async (req) => {
      const { app: name } = check(AppParam, req.params, 'path');
      return reg.setApp(name, check(SetAppBody, req.body, 'request body'));
    });

    app.post('/apps/:app/update', admin, async (req) => {
      const { app: name } = check(AppParam, req.params, 'path');
      return reg.updateApp(name);
    });

    app.delete('/apps/:app', admin, async (req) => {
      const { app: name } = check(AppParam, req.params, 'path');
      return reg.removeApp(name);
    });
  };
}
