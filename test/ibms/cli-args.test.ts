/** The CLI's copies of the model's patterns stay equal to the model (they keep TypeBox out of a command's start). */
import t from 'tap';
import { CLI_BIN_RE, CLI_NAME_RE, ACTION_NAMES, SHOW_NAMES } from '../../ibms/cli.js';
import { BinName, NAME_PATTERN } from '../../lib/config/model.js';

t.equal(CLI_NAME_RE.source, NAME_PATTERN, 'name pattern');
t.equal(CLI_BIN_RE.source, BinName.pattern, 'bin pattern');

t.test('every IBP ibms command is there, with its IBP name', async (t) => {
  for (const a of ['add_node', 'set_node', 'remove_node', 'add_node_host', 'remove_node_host', 'add_app', 'set_app', 'update_app', 'remove_app', 'add_project', 'set_project', 'remove_project', 'save_config', 'add_node_kv', 'remove_node_kv', 'set_node_kv', 'distribute_config', 'download_config', 'build_config', 'init', 'start'])
    t.ok(ACTION_NAMES.includes(a), `-a ${a}`);
  for (const s of ['sessions', 'nodes', 'apps', 'projects', 'nodes_kv', 'nodes_changed', 'status', 'node_credential']) t.ok(SHOW_NAMES.includes(s), `-s ${s}`);
});
