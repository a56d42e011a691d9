import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClientId } from '../../static/js/client-id.js';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('uses crypto.randomUUID where it exists', () => {
  assert.equal(createClientId({ randomUUID: () => 'from-crypto' }), 'from-crypto');
});

test('falls back to getRandomValues outside secure contexts', () => {
  const id = createClientId({ getRandomValues: (bytes) => bytes.fill(0xff) });
  assert.match(id, UUID4);
});

test('falls back to random() without any crypto, and ids differ', () => {
  const ids = new Set(Array.from({ length: 100 }, () => createClientId(undefined)));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, UUID4);
});
