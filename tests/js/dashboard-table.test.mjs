import { test } from 'node:test';
import assert from 'node:assert/strict';

import { COLUMNS } from '../../dashboard/js/table.js';
import { NUMERIC } from '../../dashboard/js/listing.js';

test('the columns are the ones the issue asks for, each a sort key of the server', () => {
  assert.deepEqual(COLUMNS.map((c) => c.key), [
    'id', 'user', 'rooms', 'remote', 'node', 'user_agent', 'connected_at', 'idle', 'rtt', 'frames_in', 'frames_out',
    'reconnect', 'health',
  ]);
  for (const col of COLUMNS) {
    assert.ok(col.label, col.key);
    assert.equal(Boolean(col.numeric), NUMERIC.has(col.key), `${col.key}: numeric here and in listing.js`);
  }
});
