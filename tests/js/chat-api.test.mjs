import { test } from 'node:test';
import assert from 'node:assert/strict';

import { LoginRefused, loginErrorText } from '../../static/js/api.js';

test('a ban refused at login says so, with the reason and the end if any', () => {
  const forGood = new LoginRefused(403, {
    error: 'banned', message: 'this user is banned (until lifted): spam', reason: 'spam', until: null,
  });
  assert.equal(loginErrorText(forGood), 'You are banned from this chat. Reason: spam');
  const forNow = new LoginRefused(403, { error: 'banned', message: 'x', reason: 'cool down', until: 1764140000 });
  assert.match(loginErrorText(forNow), /^You are banned from this chat until .+2025.+\. Reason: cool down$/);
  assert.equal(loginErrorText(new LoginRefused(403, { error: 'banned' })), 'You are banned from this chat. Reason: none given');
});

test('other refusals show the server’s message; a network failure says so', () => {
  assert.equal(loginErrorText(new LoginRefused(409, { error: 'name_taken', message: 'the name is in use' })),
    'the name is in use');
  assert.equal(loginErrorText(new LoginRefused(400, null)), 'HTTP 400');
  assert.equal(loginErrorText(new TypeError('fetch failed')), 'Cannot reach the server. Please try again.');
});
