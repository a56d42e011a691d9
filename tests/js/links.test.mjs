import { test } from 'node:test';
import assert from 'node:assert/strict';

import { linkParts, safeHref } from '../../static/js/links.js';

const links = (text) => linkParts(text).filter((p) => p.href).map((p) => [p.text, p.href]);

test('text without an address is one plain part', () => {
  assert.deepEqual(linkParts('hello there'), [{ text: 'hello there' }]);
  assert.deepEqual(linkParts(''), [{ text: '' }]);
});

test('http and https addresses become links; the parts join to the text again', () => {
  const text = 'see https://example.com/a?b=1&c=2#top and http://example.org, then go';
  const parts = linkParts(text);
  assert.equal(parts.map((p) => p.text).join(''), text);
  assert.deepEqual(links(text), [
    ['https://example.com/a?b=1&c=2#top', 'https://example.com/a?b=1&c=2#top'],
    ['http://example.org', 'http://example.org/'],
  ]);
  assert.deepEqual(links('HTTPS://EXAMPLE.COM'), [['HTTPS://EXAMPLE.COM', 'https://example.com/']]);
});

test('sentence punctuation and unmatched brackets after an address are not part of it', () => {
  assert.deepEqual(links('Look: https://example.com/x.'), [['https://example.com/x', 'https://example.com/x']]);
  assert.deepEqual(links('(see https://example.com/y)'), [['https://example.com/y', 'https://example.com/y']]);
  assert.deepEqual(links('https://en.wikipedia.org/wiki/Tornado_(web_server)!'),
    [['https://en.wikipedia.org/wiki/Tornado_(web_server)', 'https://en.wikipedia.org/wiki/Tornado_(web_server)']]);
  assert.deepEqual(links('"https://example.com/q"'), [['https://example.com/q', 'https://example.com/q']]);
});

test('nothing but http and https is ever a link', () => {
  for (const text of [
    'javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'java\tscript:alert(1)', 'data:text/html,<b>x</b>',
    'vbscript:msgbox', 'ftp://example.com/file', 'file:///etc/passwd', 'https://',
    'https:example.com', '//example.com',
  ]) {
    assert.deepEqual(links(text), [], text);
    assert.equal(linkParts(text).map((p) => p.text).join(''), text);
  }
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref('https://example.com'), 'https://example.com/');
});

test('an address cannot smuggle markup or quotes into its link', () => {
  const text = 'https://example.com/<img src=x onerror=alert(1)>';
  assert.deepEqual(links(text), [['https://example.com/', 'https://example.com/']]);
  assert.equal(linkParts(text).map((p) => p.text).join(''), text);
  assert.deepEqual(links('https://example.com/"onmouseover="x'), [['https://example.com/', 'https://example.com/']]);
});
