/**
 * Client message ids (`cid`): unique per user, chosen by the client, so that
 * a message re-sent after a reconnect is recognised by the server.
 */

/**
 * A random UUID. crypto.randomUUID only exists in secure contexts (https or
 * localhost), so a page served over plain http on a LAN address falls back to
 * crypto.getRandomValues, and failing that to `random`.
 */
export function createClientId(cryptoApi = globalThis.crypto, random = Math.random) {
  if (cryptoApi && typeof cryptoApi.randomUUID === 'function') {
    return cryptoApi.randomUUID();
  }
  const bytes = new Uint8Array(16);
  if (cryptoApi && typeof cryptoApi.getRandomValues === 'function') {
    cryptoApi.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(random() * 256);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
