import { test } from 'node:test';
import assert from 'node:assert/strict';

import { deletedText, formatTime } from '../../static/js/message-view.js';

test('a deleted message says who deleted it when an operator did', () => {
  assert.equal(deletedText({ deleted: true, by: 'operator' }), 'message deleted by an operator');
  assert.equal(deletedText({ deleted: true, by: null }), 'message deleted');
  assert.equal(deletedText({ deleted: true }), 'message deleted');
});

test('a time shows the date too when not today', () => {
  const now = new Date(2026, 0, 15, 12, 0);
  assert.doesNotMatch(formatTime(new Date(2026, 0, 15, 9, 30).getTime() / 1000, now), /Jan/);
  const yesterday = formatTime(new Date(2026, 0, 14, 9, 30).getTime() / 1000, now);
  assert.match(yesterday, /Jan/);
  assert.match(yesterday, /14/);
});
