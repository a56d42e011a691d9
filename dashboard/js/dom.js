/**
 * Tiny DOM helpers. Text from the server only ever goes in through
 * textContent or setAttribute, never as HTML.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * A new element: el('td', {class: 'num', title: t}, 'text', child, ...).
 * Attributes with value null/undefined/false are left out; string children
 * become text nodes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/**
 * A table's head: a column header per label, and with `actions` a last one for
 * the rows' buttons (named for screen readers only).
 */
export function tableHead(labels, { actions = false } = {}) {
  const cells = labels.map((label) => el('th', { scope: 'col' }, label));
  if (actions) cells.push(el('th', { scope: 'col', class: 'actions' }, el('span', { class: 'visually-hidden' }, 'Actions')));
  return el('thead', {}, el('tr', {}, ...cells));
}

/** A new SVG element with attributes. */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return node;
}

export function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) node.removeAttribute(name);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
}

/** Sets textContent only when it changed (keeps selections and avoids layout work). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

/** Sets an attribute only when it changed. */
export function setAttr(node, name, value) {
  const text = String(value);
  if (node.getAttribute(name) !== text) node.setAttribute(name, text);
}
