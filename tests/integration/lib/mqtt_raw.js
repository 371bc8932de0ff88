'use strict';
// A raw MQTT 3.1.1 / 5 client for tests that must send what a normal client library refuses:
// client ids of any length, floods of publishes without waiting, a subscriber that never
// acknowledges. One TCP connection per client; Node's standard library only.
//
//   const mqtt = require('./lib/mqtt_raw');
//   const c = await mqtt.connect(port, { clientId: 'x'.repeat(60000), version: 5 });
//   c.connack                      // { sessionPresent, returnCode, reasonCode, properties }
//   await c.subscribe('a/#', 1)    // granted code (an array when given an array of topics)
//   await c.publish('a/b', 'hi', { qos: 1, properties: { responseTopic, correlationData } })
//   await c.publishMany('a/b', payloads, { qos: 1, waitAcks: false })
//   await c.waitFor((m) => m.topic === 'a/b', 2000)   // { topic, payload, qos, dup, retain, packetId, properties }
//   await c.disconnect()           // DISCONNECT, then close; c.destroy() drops TCP without it
//   c.pause()                      // stop reading: the broker's packets pile up on its side
//   mqtt.connect(port, { localAddress: '127.1.2.3' })   // from another loopback address
//   mqtt.connect(port, { tls: { ca } })   // over TLS (node's tls.connect options)
//
// The client answers the broker with PUBACK for QoS 1 deliveries (not with { noAck: true })
// and with nothing else: no PINGREQ (keep tests shorter than 1.5 × keepAlive, or pass
// keepAlive: 0), no PUBREC for QoS 2 (subscribe at QoS 0 or 1).
const net = require('net');
const tls = require('tls');

const TYPE = { CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7, SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13, DISCONNECT: 14, AUTH: 15 };

// ---- encoding -------------------------------------------------------------------------------

function varint(n) {
  if (!Number.isInteger(n) || n < 0 || n > 268435455) throw new RangeError('variable byte integer out of range: ' + n);
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 128;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function u16(n) { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u32(n) { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }

// A UTF-8 string or binary field: two-byte length, then the bytes (at most 65535).
function str(s) {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(String(s), 'utf8');
  if (b.length > 65535) throw new RangeError(`string field of ${b.length} bytes (at most 65535)`);
  return Buffer.concat([u16(b.length), b]);
}

// MQTT 5 properties by name. Encoders take the JavaScript value.
const PROPS = {
  payloadFormatIndicator: [0x01, 'byte'],
  messageExpiryInterval: [0x02, 'u32'],
  contentType: [0x03, 'str'],
  responseTopic: [0x08, 'str'],
  correlationData: [0x09, 'bin'],
  subscriptionIdentifier: [0x0b, 'varint'],
  sessionExpiryInterval: [0x11, 'u32'],
  assignedClientIdentifier: [0x12, 'str'],
  serverKeepAlive: [0x13, 'u16'],
  authenticationMethod: [0x15, 'str'],
  authenticationData: [0x16, 'bin'],
  requestProblemInformation: [0x17, 'byte'],
  willDelayInterval: [0x18, 'u32'],
  requestResponseInformation: [0x19, 'byte'],
  responseInformation: [0x1a, 'str'],
  serverReference: [0x1c, 'str'],
  reasonString: [0x1f, 'str'],
  receiveMaximum: [0x21, 'u16'],
  topicAliasMaximum: [0x22, 'u16'],
  topicAlias: [0x23, 'u16'],
  maximumQoS: [0x24, 'byte'],
  retainAvailable: [0x25, 'byte'],
  userProperties: [0x26, 'pair'], // an array of [name, value], or an object
  maximumPacketSize: [0x27, 'u32'],
  wildcardSubscriptionAvailable: [0x28, 'byte'],
  subscriptionIdentifierAvailable: [0x29, 'byte'],
  sharedSubscriptionAvailable: [0x2a, 'byte'],
};
const PROP_BY_ID = new Map(Object.entries(PROPS).map(([name, [id, kind]]) => [id, { name, kind }]));

function encodeProperties(props = {}) {
  const parts = [];
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    const def = PROPS[name];
    if (!def) throw new Error('unknown MQTT 5 property: ' + name);
    const [id, kind] = def;
    if (kind === 'pair') {
      const pairs = Array.isArray(value) ? value : Object.entries(value);
      for (const [k, v] of pairs) parts.push(Buffer.from([id]), str(k), str(v));
      continue;
    }
    parts.push(Buffer.from([id]));
    if (kind === 'byte') parts.push(Buffer.from([value]));
    else if (kind === 'u16') parts.push(u16(value));
    else if (kind === 'u32') parts.push(u32(value));
    else if (kind === 'varint') parts.push(varint(value));
    else parts.push(str(value)); // str, bin
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([varint(body.length), body]);
}

function packet(firstByte, ...parts) {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
}

// Packet builders, exported for tests that want to send them (or bytes derived from them) raw.
const packets = {
  connect({ clientId = '', version = 4, clean = true, keepAlive = 60, username, password, will, sessionExpiry, properties = {} } = {}) {
    let flags = clean ? 0x02 : 0;
    if (will) flags |= 0x04 | ((will.qos || 0) << 3) | (will.retain ? 0x20 : 0);
    if (password !== undefined) flags |= 0x40;
    if (username !== undefined) flags |= 0x80;
    const parts = [str(version === 3 ? 'MQIsdp' : 'MQTT'), Buffer.from([version, flags]), u16(keepAlive)];
    if (version === 5) parts.push(encodeProperties({ sessionExpiryInterval: sessionExpiry, ...properties }));
    parts.push(str(clientId));
    if (will) {
      if (version === 5) parts.push(encodeProperties(will.properties || {}));
      parts.push(str(will.topic), str(will.payload === undefined ? '' : will.payload));
    }
    if (username !== undefined) parts.push(str(username));
    if (password !== undefined) parts.push(str(password));
    return packet(0x10, ...parts);
  },
  publish(topic, payload, { qos = 0, retain = false, dup = false, packetId = 0, version = 4, properties = {} } = {}) {
    const parts = [str(topic)];
    if (qos > 0) parts.push(u16(packetId));
    if (version === 5) parts.push(encodeProperties(properties));
    parts.push(Buffer.isBuffer(payload) ? payload : Buffer.from(String(payload), 'utf8'));
    return packet(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0), ...parts);
  },
  puback(packetId) { return packet(0x40, u16(packetId)); },
  subscribe(topics, { packetId, version = 4, properties = {} } = {}) {
    const parts = [u16(packetId)];
    if (version === 5) parts.push(encodeProperties(properties));
    for (const [topic, qos] of topics) parts.push(str(topic), Buffer.from([qos]));
    return packet(0x82, ...parts);
  },
  pingreq() { return Buffer.from([0xc0, 0]); },
  disconnect() { return Buffer.from([0xe0, 0]); },
};

// ---- decoding -------------------------------------------------------------------------------

class Reader {
  constructor(buf) { this.buf = buf; this.off = 0; }
  left() { return this.buf.length - this.off; }
  need(n) { if (this.left() < n) throw new Error('malformed packet: truncated'); }
  byte() { this.need(1); return this.buf[this.off++]; }
  u16() { this.need(2); const v = this.buf.readUInt16BE(this.off); this.off += 2; return v; }
  u32() { this.need(4); const v = this.buf.readUInt32BE(this.off); this.off += 4; return v; }
  bytes(n) { this.need(n); const b = Buffer.from(this.buf.subarray(this.off, this.off + n)); this.off += n; return b; }
  bin() { return this.bytes(this.u16()); }
  str() { return this.bin().toString('utf8'); }
  varint() {
    let v = 0, mult = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.byte();
      v += (b & 127) * mult;
      if (!(b & 128)) return v;
      mult *= 128;
    }
    throw new Error('malformed packet: variable byte integer longer than 4 bytes');
  }
  rest() { return this.bytes(this.left()); }
  properties() {
    const len = this.varint();
    const end = this.off + len;
    this.need(len);
    const props = {};
    while (this.off < end) {
      const id = this.varint();
      const def = PROP_BY_ID.get(id);
      if (!def) throw new Error('malformed packet: unknown property 0x' + id.toString(16));
      let v;
      if (def.kind === 'byte') v = this.byte();
      else if (def.kind === 'u16') v = this.u16();
      else if (def.kind === 'u32') v = this.u32();
      else if (def.kind === 'varint') v = this.varint();
      else if (def.kind === 'str') v = this.str();
      else if (def.kind === 'bin') v = this.bin();
      else v = [this.str(), this.str()];
      if (def.kind === 'pair') (props[def.name] = props[def.name] || []).push(v);
      else if (def.name === 'subscriptionIdentifier') (props[def.name] = props[def.name] || []).push(v);
      else props[def.name] = v;
    }
    if (this.off !== end) throw new Error('malformed packet: properties overrun');
    return props;
  }
}

// ---- the client -----------------------------------------------------------------------------

class RawClient {
  constructor(socket, { version, noAck = false, record = true }) {
    this.socket = socket;
    this.version = version;
    this.noAck = noAck;
    this.record = record;       // false: count deliveries, do not keep them (for floods)
    this.connack = null;
    this.messages = [];
    this.received = 0;          // PUBLISH packets received, recorded or not
    this.serverDisconnect = null; // the broker's MQTT 5 DISCONNECT: { reasonCode, properties }
    this.error = null;
    this.nextId = 1;
    this.pending = new Map();   // packet id → { resolve, reject, type }
    this.waiters = new Set();
    this.chunks = [];
    this.buffered = 0;
    this.need = 2;              // bytes wanted before parsing is worth trying
    this.onConnack = null;
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        const err = new Error('connection closed' + (this.error ? ': ' + this.error.message : ''));
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        for (const w of this.waiters) w.reject(err);
        this.waiters.clear();
        if (this.onConnack) this.onConnack(null, err);
        resolve({ error: this.error, serverDisconnect: this.serverDisconnect });
      });
    });
    socket.on('error', (e) => { this.error = e; });
    socket.on('data', (chunk) => this.onData(chunk));
  }

  // Packets may arrive split or coalesced: buffer until a whole one is there. Chunks are only
  // joined once enough bytes are buffered, so a large packet is not copied once per read.
  onData(chunk) {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.need) return;
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    let off = 0;
    let need = 2;
    for (;;) {
      const avail = buf.length - off;
      if (avail < 2) { need = 2; break; }
      let len = 0, mult = 1, i = off + 1, done = false;
      for (let k = 0; k < 4 && i < buf.length; k++) {
        const b = buf[i++];
        len += (b & 127) * mult;
        mult *= 128;
        if (!(b & 128)) { done = true; break; }
      }
      if (!done) {
        if (i - off - 1 >= 4) return this.protocolError(new Error('malformed remaining length'));
        need = avail + 1;
        break;
      }
      const total = i - off + len;
      if (avail < total) { need = total; break; }
      const first = buf[off];
      const body = buf.subarray(i, i + len);
      off += total;
      try {
        this.handle(first, body);
      } catch (e) {
        return this.protocolError(e);
      }
    }
    const rest = buf.subarray(off);
    this.chunks = rest.length ? [Buffer.from(rest)] : [];
    this.buffered = rest.length;
    this.need = need;
  }

  protocolError(e) {
    this.error = e;
    this.chunks = [];
    this.buffered = 0;
    this.socket.destroy();
  }

  handle(first, body) {
    const type = first >> 4;
    const r = new Reader(body);
    const v5 = this.version === 5;
    switch (type) {
      case TYPE.CONNACK: {
        const sessionPresent = (r.byte() & 1) === 1;
        const code = r.byte();
        const properties = v5 && r.left() ? r.properties() : {};
        this.connack = { sessionPresent, returnCode: code, reasonCode: code, properties };
        if (this.onConnack) this.onConnack(this.connack);
        break;
      }
      case TYPE.PUBLISH: {
        const qos = (first >> 1) & 3;
        const topic = r.str();
        const packetId = qos > 0 ? r.u16() : null;
        const properties = v5 ? r.properties() : {};
        const msg = { topic, payload: r.rest(), qos, dup: (first & 8) !== 0, retain: (first & 1) !== 0, packetId, properties };
        this.received++;
        if (this.record) this.messages.push(msg);
        if (qos === 1 && !this.noAck) this.socket.write(packets.puback(packetId));
        for (const w of this.waiters) {
          if (w.pred(msg)) { this.waiters.delete(w); w.resolve(msg); }
        }
        break;
      }
      case TYPE.PUBACK: {
        const id = r.u16();
        const reasonCode = r.left() ? r.byte() : 0;
        this.settle(id, TYPE.PUBACK, reasonCode);
        break;
      }
      case TYPE.SUBACK: {
        const id = r.u16();
        if (v5) r.properties();
        const codes = [...r.rest()];
        this.settle(id, TYPE.SUBACK, codes);
        break;
      }
      case TYPE.DISCONNECT:
        this.serverDisconnect = { reasonCode: r.left() ? r.byte() : 0, properties: v5 && r.left() ? r.properties() : {} };
        break;
      default:
        break; // PINGRESP, PUBREC, UNSUBACK, AUTH...: not answered
    }
  }

  settle(id, type, value) {
    const p = this.pending.get(id);
    if (!p || p.type !== type) return;
    this.pending.delete(id);
    p.resolve(value);
  }

  allocId() {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  expect(id, type) {
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) return reject(new Error('connection closed'));
      this.pending.set(id, { resolve, reject, type });
    });
  }

  write(buf) {
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed || this.socket.writableEnded) return reject(new Error('connection closed'));
      this.socket.write(buf, (e) => (e ? reject(e) : resolve()));
    });
  }

  // Any bytes at all, as they are.
  writeRaw(buf) { return this.write(buf); }

  // Resolves with the granted code (an array of codes for an array of topics).
  async subscribe(topic, qos = 0) {
    const list = Array.isArray(topic) ? topic.map((t) => (Array.isArray(t) ? t : [t, qos])) : [[topic, qos]];
    const packetId = this.allocId();
    const acked = this.expect(packetId, TYPE.SUBACK);
    acked.catch(() => {}); // awaited below; not unhandled if the write fails first
    await this.write(packets.subscribe(list, { packetId, version: this.version }));
    const codes = await acked;
    return Array.isArray(topic) ? codes : codes[0];
  }

  // QoS 0: resolves once written. QoS 1: resolves with the PUBACK's reason code (0 in 3.1.1).
  async publish(topic, payload, { qos = 0, retain = false, properties = {} } = {}) {
    if (qos !== 0 && qos !== 1) throw new RangeError('publish: QoS 0 or 1 only');
    const packetId = qos ? this.allocId() : 0;
    const acked = qos ? this.expect(packetId, TYPE.PUBACK) : null;
    if (acked) acked.catch(() => {}); // awaited below; not unhandled if the write fails first
    await this.write(packets.publish(topic, payload, { qos, retain, packetId, version: this.version, properties }));
    return acked ? acked : undefined;
  }

  // Many PUBLISH packets written back to back, batchSize per socket write, without waiting
  // for acknowledgements; with waitAcks (QoS 1) resolves with every PUBACK reason code.
  // Packet ids wrap after 65535: do not waitAcks on more than that at once.
  async publishMany(topic, payloads, { qos = 0, retain = false, properties = {}, waitAcks = false, batchSize = 1000 } = {}) {
    if (qos !== 0 && qos !== 1) throw new RangeError('publishMany: QoS 0 or 1 only');
    const acks = [];
    for (let start = 0; start < payloads.length; start += batchSize) {
      const batch = [];
      for (const payload of payloads.slice(start, start + batchSize)) {
        const packetId = qos ? this.allocId() : 0;
        if (qos && waitAcks) {
          const acked = this.expect(packetId, TYPE.PUBACK);
          acked.catch(() => {});
          acks.push(acked);
        }
        batch.push(packets.publish(topic, payload, { qos, retain, packetId, version: this.version, properties }));
      }
      const buf = Buffer.concat(batch);
      if (!this.socket.write(buf)) await this.drained();
    }
    await this.write(Buffer.alloc(0)); // everything above handed to the kernel
    return waitAcks ? Promise.all(acks) : undefined;
  }

  drained() {
    return new Promise((resolve, reject) => {
      const done = () => { this.socket.off('drain', done); this.socket.off('close', fail); resolve(); };
      const fail = () => { this.socket.off('drain', done); reject(new Error('connection closed')); };
      this.socket.on('drain', done);
      this.socket.once('close', fail);
    });
  }

  // The first message (received already, or later) for which pred is true.
  waitFor(pred = () => true, timeoutMs = 5000) {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => { clearTimeout(w.timer); resolve(m); }, reject: (e) => { clearTimeout(w.timer); reject(e); } };
      w.timer = setTimeout(() => { this.waiters.delete(w); reject(new Error(`no matching message within ${timeoutMs} ms`)); }, timeoutMs);
      this.waiters.add(w);
      if (this.socket.destroyed) { this.waiters.delete(w); w.reject(new Error('connection closed')); }
    });
  }

  // Stop reading the socket: what the broker sends piles up in its buffers, not ours.
  pause() { this.socket.pause(); }
  resume() { this.socket.resume(); }

  // DISCONNECT, then our end of the connection; resolves once it is closed. A paused client
  // never sees the broker's end of it: after timeoutMs the socket is destroyed.
  async disconnect({ timeoutMs = 5000 } = {}) {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end(packets.disconnect());
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    try {
      return await this.closed;
    } finally {
      clearTimeout(timer);
    }
  }

  destroy() {
    this.socket.destroy();
    return this.closed;
  }
}

// Resolves with a connected client once CONNACK arrives (whatever its code: look at
// client.connack); rejects if the connection closes first or no CONNACK comes in time.
function connect(port, { host = '127.0.0.1', localAddress, tls: tlsOptions = null, clientId = '', version = 4, clean = true, keepAlive = 60, username, password, will, sessionExpiry, properties, noAck = false, record = true, timeoutMs = 10000 } = {}) {
  if (version !== 4 && version !== 5) throw new RangeError('version: 4 (3.1.1) or 5');
  const bytes = packets.connect({ clientId, version, clean, keepAlive, username, password, will, sessionExpiry, properties });
  return new Promise((resolve, reject) => {
    // localAddress: any of 127.0.0.0/8 on loopback, for tests that need many client addresses
    const socket = tlsOptions ? tls.connect({ port, host, localAddress, ...tlsOptions }) : net.connect({ port, host, localAddress });
    socket.setNoDelay(true);
    const client = new RawClient(socket, { version, noAck, record });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no CONNACK within ${timeoutMs} ms`)); }, timeoutMs);
    client.onConnack = (connack, err) => {
      client.onConnack = null;
      clearTimeout(timer);
      if (connack) resolve(client); else reject(err);
    };
    socket.on(tlsOptions ? 'secureConnect' : 'connect', () => socket.write(bytes));
  });
}

module.exports = { connect, packets, encodeProperties, varint, RawClient, TYPE };
