import { test } from 'node:test';
import assert from 'node:assert/strict';

import { counterOf, counterThreshold, textLength } from '../../static/js/composer.js';

test('length is counted in code points, as the server counts', () => {
  assert.equal(textLength(''), 0);
  assert.equal(textLength('hello'), 5);
  assert.equal(textLength('👍🏽'), 2, 'two code points, four UTF-16 units');
  assert.equal('👍🏽'.length, 4);
  assert.equal(textLength('é'), 1);
});

test('the counter appears near the limit and says how many are left', () => {
  assert.equal(counterThreshold(4000), 400);
  assert.equal(counterThreshold(50), 20);
  assert.deepEqual(counterOf('x'.repeat(3599), 4000), { show: false, over: false, remaining: 401, label: '' });
  assert.deepEqual(counterOf('x'.repeat(3600), 4000),
    { show: true, over: false, remaining: 400, label: '400 characters left' });
  assert.equal(counterOf('x'.repeat(3999), 4000).label, '1 character left');
  assert.equal(counterOf('x'.repeat(4000), 4000).over, false, 'exactly the limit is allowed');
});

test('over the limit it says by how much', () => {
  assert.deepEqual(counterOf('x'.repeat(4001), 4000),
    { show: true, over: true, remaining: -1, label: '1 character too many (limit 4000)' });
  assert.equal(counterOf('😀'.repeat(51), 50).label, '1 character too many (limit 50)');
});

test('without a known limit there is no counter', () => {
  assert.deepEqual(counterOf('x'.repeat(10000), null), { show: false, over: false, remaining: null, label: '' });
  assert.equal(counterOf('x', undefined).show, false);
});
