'use strict';
// Keys that collide in the refusal limiter of the plugin before issue 18: FNV-1a with its
// public offset basis over 65 536 slots, a probe window of 32. An outsider computes them in
// well under a second; with the keyed hash they are keys like any other. Used by
// tests/integration/limits.test.js and bench/refusal_flood.js.

function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  return h >>> 0;
}

const SLOTS = 65536;
const slot = (s) => fnv1a(s) & (SLOTS - 1);

// n client ids (prefix + counter, ASCII) in the slot of target.
function clientIds(target, n, prefix = 'fill-') {
  const want = slot(target), out = [];
  for (let i = 0; out.length < n; i++) {
    const id = prefix + i;
    if (slot(id) === want && id !== target) out.push(id);
  }
  return out;
}

// n loopback addresses (127.x.y.z, x from 10) in the slot of target (an address too).
function addresses(target, n) {
  const want = slot(target), out = [];
  for (let x = 10; x < 255 && out.length < n; x++) {
    for (let y = 0; y < 256 && out.length < n; y++) {
      for (let z = 1; z < 255 && out.length < n; z++) {
        const a = `127.${x}.${y}.${z}`;
        if (slot(a) === want && a !== target) out.push(a);
      }
    }
  }
  return out;
}

module.exports = { fnv1a, slot, clientIds, addresses };
