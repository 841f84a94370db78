/** Admin routes for projects (ibms -s projects, -a add_project|set_project|remove_project). */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from '../registry.js';
import { AddProjectBody, FilterQuery, NameParam, SetProjectBody, check } from '../schemas.js';

const admin = { config: { access: 'admin' as const } };
const adminRead = { config: { access: 'admin-read' as const } };
const ProjectParam = NameParam('project');

export function projectRoutes(reg: Registry): FastifyPluginAsync {
  return async (app) => {
    app.get('/projects', adminRead, async (req) => {
      const q = check(FilterQuery, req.query, 'query');
      return { projects: q.project ? [reg.store.project(q.project)] : [...reg.store.projects.values()] };
    });

    app.post('/projects', admin, async (req, reply) => {
      const b = check(AddProjectBody, req.body, 'request body');
      return reply.status(201).send(reg.addProject({ project: b.project, server_nodes: b.server_nodes ?? [], client_nodes: b.client_nodes ?? [], apps: b.apps ?? [] }));
    });

    app.patch('/projects/:project', admin, async (req) => {
      const { project } = check(ProjectParam, req.params, 'path');
      return reg.setProject(project, check(SetProjectBody, req.body, 'request body'));
    });

    app.delete('/projects/:project', admin, async (req) => {
      const { project } = check(ProjectParam, req.params, 'path');
      return reg.removeProject(project);
    });
  };
}
