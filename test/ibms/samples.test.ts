/** The commented samples in etc/ are valid config files (schema and references). */
import path from 'node:path';
import t from 'tap';
import { loadConfigFile } from '../../lib/config/load.js';
import { IbmsConf, defaultIbmsConf } from '../../lib/config/ibms-conf.js';
import { validate } from '../../lib/config/load.js';
import { loadData } from '../../ibms/persist.js';
import { ROOT } from '../helpers/procs.js';

const etc = (n: string): string => path.join(ROOT, 'etc', n);

t.test('etc/ibms.conf and the defaults of init are valid', async (t) => {
  t.same(loadConfigFile(IbmsConf, etc('ibms.conf')), defaultIbmsConf(), 'the sample holds the defaults');
  t.ok(validate(IbmsConf, defaultIbmsConf('127.0.0.9', 1), 'defaults'));
});

t.test('etc/ibp_*.conf load with their references checked', async (t) => {
  const l = loadData({ nodes: etc('ibp_nodes.conf'), apps: etc('ibp_apps.conf'), projects: etc('ibp_projects.conf') }, { useImages: false });
  t.equal(l.store.nodes.size, 2);
  t.equal(l.store.apps.size, 2);
  t.same([...l.store.related('CORE')], ['ECIF']);
});
