import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Names } from '../../static/js/names.js';
import { senderName } from '../../static/js/message-view.js';

const ALICE = 'g:Qx1';
const BOB = 'g:Zz9';

test('the own name is known from the start; unknown ids show as themselves', () => {
  const names = new Names({ id: ALICE, name: 'alice' });
  assert.equal(names.of(ALICE), 'alice');
  assert.equal(names.of(BOB), BOB);
});

test('names come from joined and presence frames', () => {
  const names = new Names({ id: ALICE, name: 'alice' });
  names.learn({ type: 'joined', room: 'r', members: [ALICE, BOB], names: { [ALICE]: 'alice', [BOB]: 'Bob' }, messages: [] });
  assert.equal(names.of(BOB), 'Bob');
  names.learn({ type: 'presence', room: 'r', joined: ['auth0|7'], left: [], names: { 'auth0|7': 'Ann Lee' } });
  assert.equal(names.of('auth0|7'), 'Ann Lee');
});

test('names come from messages: the sender, and a direct message\'s recipient', () => {
  const names = new Names(null);
  names.learn({ type: 'message', id: 1, from: BOB, name: 'bob', to: ALICE, to_name: 'alice', text: 'hi' });
  assert.equal(names.of(BOB), 'bob');
  assert.equal(names.of(ALICE), 'alice');
  names.learn({ type: 'dm_sync', messages: [{ id: 2, from: 'g:c', name: 'carol', to: ALICE, text: 'x' }] });
  assert.equal(names.of('g:c'), 'carol');
  names.learn({ type: 'history', with: BOB, messages: [{ id: 3, from: BOB, name: 'bobby', to: ALICE }] });
  assert.equal(names.of(BOB), 'bobby');
});

test('a frame from a baseline server, without names, changes nothing and breaks nothing', () => {
  const names = new Names({ id: 'alice', name: 'alice' });
  for (const frame of [{ type: 'joined', members: ['bob'] }, { type: 'message', from: 'bob' }, null, 'pong',
    { type: 'presence', names: null }, { type: 'joined', names: { bob: 42 } }, { type: 'history', messages: [null] }]) {
    names.learn(frame);
  }
  assert.equal(names.of('bob'), 'bob');
});

test('ids sort by display name, case-insensitively, then by id', () => {
  const names = new Names(null);
  names.set('g:1', 'carol');
  names.set('g:2', 'Alice');
  names.set('g:3', 'bob');
  names.set('g:4', 'alice');
  assert.deepEqual(['g:1', 'g:2', 'g:3', 'g:4'].sort((a, b) => names.compare(a, b)), ['g:2', 'g:4', 'g:3', 'g:1']);
});

test('a message shows its sender\'s name, else the name known for its id, else the id', () => {
  const names = new Names(null);
  names.set(BOB, 'bob');
  assert.equal(senderName({ from: BOB, name: 'Bob' }, (id) => names.of(id)), 'Bob');
  assert.equal(senderName({ from: BOB }, (id) => names.of(id)), 'bob');
  assert.equal(senderName({ from: 'g:unknown' }, (id) => names.of(id)), 'g:unknown');
  assert.equal(senderName({ from: 'plain' }), 'plain');
});

test('names come with the conversation frames too: typing, invitations, unread counts, events', () => {
  const start = new Names(null);
  const names = [
    { type: 'typing', room: 'general', user: 'g:t', name: 'tina', typing: true },
    { type: 'invited', room: 'design', topic: '', by: 'g:o', name: 'olga' },
    { type: 'welcome', unread: { rooms: {}, direct: { 'g:d': { name: 'dora', read: 0, unread: 2 } } } },
    { type: 'edit', id: 9, target: 3, from: 'g:e', name: 'emil', to: 'g:f', to_name: 'fay', text: 'x' },
    { type: 'joined', room: 'r', members: [], messages: [], events: [{ type: 'delete', from: 'g:h', name: 'hugo' }] },
  ].reduce((n, frame) => n.learned(frame), start);
  assert.equal(start.has('g:t'), false);
  for (const [id, name] of [['g:t', 'tina'], ['g:o', 'olga'], ['g:d', 'dora'], ['g:e', 'emil'], ['g:f', 'fay'],
    ['g:h', 'hugo']]) {
    assert.equal(names.of(id), name, id);
  }
});
