/**
 * Links in message text. A message is split into plain text and links, and
 * message-view.js builds the links with DOM APIs (never innerHTML). Only
 * http: and https: addresses written out in full become links, so that a
 * `javascript:` or `data:` address can never be one, whatever its spelling.
 */

// An address runs to the next space or character that cannot be in one unquoted.
const ADDRESS = /\bhttps?:\/\/[^\s<>"'`]+/gi;
// Punctuation that ends a sentence rather than the address it follows.
const TRAILING = /[.,;:!?*_~'"]+$/;
const SAFE_PROTOCOLS = new Set(['http:', 'https:']);

/**
 * Cuts what does not belong to an address off its end: sentence punctuation,
 * and closing brackets without an opening one inside the address
 * ("(see https://example.com/a)" ends before the bracket, a Wikipedia address
 * "https://en.wikipedia.org/wiki/Tornado_(web_server)" keeps it).
 */
function trimAddress(raw) {
  let address = raw;
  for (;;) {
    const before = address;
    address = address.replace(TRAILING, '');
    for (const [open, close] of [['(', ')'], ['[', ']'], ['{', '}']]) {
      if (address.endsWith(close) && count(address, close) > count(address, open)) {
        address = address.slice(0, -1);
      }
    }
    if (address === before) return address;
  }
}

function count(text, ch) {
  return text.split(ch).length - 1;
}

/** The address as a link target, or null when it is not a safe http(s) URL. */
export function safeHref(address) {
  let url;
  try {
    url = new URL(address);
  } catch {
    return null;
  }
  return SAFE_PROTOCOLS.has(url.protocol) && url.hostname ? url.href : null;
}

/**
 * `text` as parts in order: {text} for plain text, {text, href} for a link
 * (text: the address as written; href: the URL to open). Joined, the parts'
 * texts are `text` again.
 */
export function linkParts(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(ADDRESS)) {
    const address = trimAddress(match[0]);
    const href = safeHref(address);
    if (href === null) continue;
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push({ text: address, href });
    last = match.index + address.length;
  }
  if (last < text.length || parts.length === 0) parts.push({ text: text.slice(last) });
  return parts;
}
