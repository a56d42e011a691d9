import { test } from 'node:test';
import assert from 'node:assert/strict';

import { TABLES, summaryTables } from '../../dashboard/js/summary-view.js';

test('each small table: its rows, with the filter a click on the first cell sets', () => {
  const tables = summaryTables({
    top_users: [{ user: 'g:1', name: 'ann', connections: 1200, nodes: { 'node-a': 1000, 'node-b': 200 } },
      { user: 'g:2', name: '', connections: 3, nodes: { '': 3 } }],
    rooms: [{ room: 'lobby', members: 38000, connections: 38012 }],
    nodes: [{ node: 'node-a', connections: 19000, users: 950 }, { node: 'node-b', connections: 19000, users: 951 }],
    terminations: { heartbeat_timeout: 1500, kicked: 2 },
    reconnects: { network: 30000 },
    window: 300,
  });
  assert.deepEqual(tables.users[0], {
    key: 'g:1', label: 'ann', filter: ['user', 'g:1'], cells: ['1,200', 'node-a 1,000 · node-b 200'],
  });
  assert.deepEqual(tables.users[1].label, 'g:2', 'no name: the user id');
  assert.deepEqual(tables.users[1].cells[1], '3', 'a server alone names no node');
  assert.deepEqual(tables.rooms, [{ key: 'lobby', label: 'lobby', filter: ['room', 'lobby'], cells: ['38,000', '38,012'] }]);
  assert.deepEqual(tables.terminations.map((r) => [r.label, r.cells[0], r.filter]),
    [['heartbeat timeout', '1,500', null], ['kicked', '2', null]]);
  assert.deepEqual(tables.reconnects.map((r) => r.filter), [['cause', 'network']]);
  assert.deepEqual(tables.nodes.map((r) => r.filter), [['node', 'node-a'], ['node', 'node-b']]);
  assert.deepEqual(Object.keys(tables).sort(), TABLES.map((t) => t.name).sort());
});

test('a server alone has no node table; an empty or missing summary has empty tables', () => {
  assert.deepEqual(summaryTables({ nodes: [{ node: null, connections: 3, users: 1 }] }).nodes, []);
  for (const rows of Object.values(summaryTables(undefined))) assert.deepEqual(rows, []);
});
