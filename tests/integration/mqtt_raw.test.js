'use strict';
// Self-test of lib/mqtt_raw.js against a plain mosquitto (no plugin): what the attacker-client
// tests build on must itself be right.
const test = require('node:test');
const assert = require('assert');
const { EventEmitter } = require('events');
const fs = require('fs');
const net = require('net');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

let broker, dir, port;

test.before(async () => {
  dir = h.makeWorkdir();
  port = await h.freePort();
  const confPath = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(confPath, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_queued_messages 100000',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ].join('\n') + '\n');
  h.giveToBroker(confPath);
  h.giveToBroker(dir);
  broker = new h.Broker(dir, port, confPath);
  await broker.start({});
});

test.after(async () => {
  if (broker) await broker.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const ids = new Set();
function id(prefix) {
  const s = `${prefix}-${process.pid}-${ids.size}`;
  ids.add(s);
  return s;
}

test('parser: packets split byte by byte and coalesced into one chunk', async () => {
  const pubs = [
    mqtt.packets.publish('a/b', 'one', { qos: 0 }),
    mqtt.packets.publish('a/c', Buffer.alloc(20000, 7), { qos: 1, packetId: 9 }), // 3-byte remaining length
    Buffer.from([0xd0, 0]), // PINGRESP: ignored
    mqtt.packets.publish('a/d', '', { qos: 0 }),
  ];
  const all = Buffer.concat(pubs);
  for (const chunking of ['bytewise', 'whole', 'odd']) {
    const sock = new EventEmitter();
    const written = [];
    sock.write = (b) => { written.push(b); return true; };
    sock.destroy = () => { sock.destroyed = true; };
    const c = new mqtt.RawClient(sock, { version: 4 });
    if (chunking === 'bytewise') for (let i = 0; i < all.length; i++) sock.emit('data', all.subarray(i, i + 1));
    else if (chunking === 'whole') sock.emit('data', all);
    else for (let i = 0; i < all.length; i += 7919) sock.emit('data', all.subarray(i, i + 7919));
    assert.ok(!c.error, `${chunking}: ${c.error && c.error.message}`);
    assert.deepStrictEqual(c.messages.map((m) => [m.topic, m.payload.length, m.qos]), [['a/b', 3, 0], ['a/c', 20000, 1], ['a/d', 0, 0]], chunking);
    assert.ok(c.messages[1].payload.equals(Buffer.alloc(20000, 7)));
    assert.deepStrictEqual(written, [mqtt.packets.puback(9)], `${chunking}: one PUBACK for the QoS 1 message`);
  }
});

test('remaining length encodes up to four bytes', () => {
  assert.deepStrictEqual([...mqtt.varint(127)], [0x7f]);
  assert.deepStrictEqual([...mqtt.varint(128)], [0x80, 0x01]);
  assert.deepStrictEqual([...mqtt.varint(16383)], [0xff, 0x7f]);
  assert.deepStrictEqual([...mqtt.varint(2097152)], [0x80, 0x80, 0x80, 0x01]);
  assert.deepStrictEqual([...mqtt.varint(268435455)], [0xff, 0xff, 0xff, 0x7f]);
  assert.throws(() => mqtt.varint(268435456), RangeError);
});

test('3.1.1 and 5 connect', async () => {
  const a = await mqtt.connect(port, { clientId: id('v4') });
  const b = await mqtt.connect(port, { clientId: id('v5'), version: 5, sessionExpiry: 0 });
  try {
    assert.strictEqual(a.connack.returnCode, 0);
    assert.strictEqual(a.connack.sessionPresent, false);
    assert.strictEqual(b.connack.reasonCode, 0);
    assert.strictEqual(b.connack.sessionPresent, false);
    assert.strictEqual(typeof b.connack.properties, 'object');
  } finally {
    await a.disconnect();
    await b.disconnect();
  }
  assert.strictEqual((await a.closed).error, null);
});

test('a refused CONNECT still resolves, with the return code', async () => {
  // 3.1.1: a zero-length client id without clean session is refused with 2 (identifier rejected)
  const c = await mqtt.connect(port, { clientId: '', clean: false });
  assert.strictEqual(c.connack.returnCode, 2);
  await c.closed;
});

test('subscribe + publish round trip, QoS 0 and 1, 3.1.1 and 5', async () => {
  for (const version of [4, 5]) {
    const sub = await mqtt.connect(port, { clientId: id('sub'), version });
    const pub = await mqtt.connect(port, { clientId: id('pub'), version });
    try {
      const topic = `rt/${version}`;
      assert.deepStrictEqual(await sub.subscribe([[`${topic}/0`, 0], [`${topic}/1`, 1]]), [0, 1]);
      assert.strictEqual(await sub.subscribe(`${topic}/x`, 1), 1);
      assert.strictEqual(await pub.publish(`${topic}/0`, 'zero'), undefined);
      assert.strictEqual(await pub.publish(`${topic}/1`, Buffer.from([1, 2, 3]), { qos: 1 }), 0);
      const m0 = await sub.waitFor((m) => m.topic === `${topic}/0`, 3000);
      const m1 = await sub.waitFor((m) => m.topic === `${topic}/1`, 3000);
      assert.strictEqual(m0.payload.toString(), 'zero');
      assert.strictEqual(m0.qos, 0);
      assert.deepStrictEqual([...m1.payload], [1, 2, 3]);
      assert.strictEqual(m1.qos, 1);
      assert.strictEqual(m1.dup, false);
      if (version === 5) {
        // nobody subscribed: the broker says so in the PUBACK reason code (16, no matching subscribers)
        assert.strictEqual(await pub.publish('rt/nobody', 'x', { qos: 1 }), 16);
      }
    } finally {
      await sub.disconnect();
      await pub.disconnect();
    }
  }
});

test('a 60 000-byte client id connects and round-trips a message', async () => {
  const long = 'L'.repeat(60000);
  const c = await mqtt.connect(port, { clientId: long });
  try {
    assert.strictEqual(c.connack.returnCode, 0);
    await c.subscribe('long/id', 1);
    assert.strictEqual(await c.publish('long/id', 'hello', { qos: 1 }), 0);
    assert.strictEqual((await c.waitFor((m) => m.topic === 'long/id', 3000)).payload.toString(), 'hello');
  } finally {
    await c.disconnect();
  }
});

test('publishMany: 10 000 one-byte QoS 1 publishes, all acknowledged and delivered', async () => {
  const sub = await mqtt.connect(port, { clientId: id('many-sub'), record: false });
  const pub = await mqtt.connect(port, { clientId: id('many-pub') });
  try {
    await sub.subscribe('many/t', 0);
    const payloads = Array.from({ length: 10000 }, (_, i) => Buffer.from([i & 0xff]));
    const codes = await pub.publishMany('many/t', payloads, { qos: 1, waitAcks: true });
    assert.strictEqual(codes.length, 10000);
    assert.ok(codes.every((c) => c === 0));
    const deadline = Date.now() + 10000;
    while (sub.received < 10000 && Date.now() < deadline) await h.sleep(20);
    assert.strictEqual(sub.received, 10000);
    assert.strictEqual(sub.messages.length, 0, 'record: false keeps nothing');
    // without waitAcks it resolves once written
    assert.strictEqual(await pub.publishMany('many/t', ['a', 'b'], { qos: 1 }), undefined);
  } finally {
    await sub.disconnect();
    await pub.disconnect();
  }
});

test('MQTT 5: Response Topic and Correlation Data reach a v5 subscriber', async () => {
  const sub = await mqtt.connect(port, { clientId: id('rr-sub'), version: 5 });
  const pub = await mqtt.connect(port, { clientId: id('rr-pub'), version: 5 });
  try {
    await sub.subscribe('rr/req', 1);
    const correlationData = Buffer.from([0, 1, 2, 0xff]);
    assert.strictEqual(await pub.publish('rr/req', 'q', { qos: 1, properties: { responseTopic: 'rr/resp/1', correlationData, userProperties: [['k', 'v']] } }), 0);
    const m = await sub.waitFor((x) => x.topic === 'rr/req', 3000);
    assert.strictEqual(m.properties.responseTopic, 'rr/resp/1');
    assert.ok(Buffer.isBuffer(m.properties.correlationData) && m.properties.correlationData.equals(correlationData));
    assert.deepStrictEqual(m.properties.userProperties, [['k', 'v']]);
  } finally {
    await sub.disconnect();
    await pub.disconnect();
  }
});

test('retained message delivered to a later subscriber', async () => {
  const pub = await mqtt.connect(port, { clientId: id('ret-pub') });
  await pub.publish('ret/t', 'kept', { qos: 1, retain: true });
  await pub.disconnect();
  const sub = await mqtt.connect(port, { clientId: id('ret-sub'), version: 5 });
  try {
    assert.strictEqual(await sub.subscribe('ret/t', 1), 1);
    const m = await sub.waitFor((x) => x.topic === 'ret/t', 3000);
    assert.strictEqual(m.payload.toString(), 'kept');
    assert.strictEqual(m.retain, true);
  } finally {
    await sub.disconnect();
  }
});

test('will: published when the TCP connection drops, not after DISCONNECT', async () => {
  const sub = await mqtt.connect(port, { clientId: id('will-sub') });
  try {
    await sub.subscribe('will/#', 1);
    for (const version of [4, 5]) {
      const polite = await mqtt.connect(port, { clientId: id('polite'), version, will: { topic: `will/polite/${version}`, payload: 'x', qos: 1 } });
      await polite.disconnect();
      const rude = await mqtt.connect(port, { clientId: id('rude'), version, will: { topic: `will/rude/${version}`, payload: Buffer.from('gone'), qos: 1, retain: false } });
      await rude.destroy();
      const m = await sub.waitFor((x) => x.topic === `will/rude/${version}`, 3000);
      assert.strictEqual(m.payload.toString(), 'gone');
    }
    await h.sleep(200);
    assert.deepStrictEqual(sub.messages.map((m) => m.topic).filter((t) => t.startsWith('will/polite')), []);
  } finally {
    await sub.disconnect();
  }
});

test('noAck: a delivery it never acknowledges is sent again, marked DUP, when the session resumes', async () => {
  const pub = await mqtt.connect(port, { clientId: id('na-pub') });
  const clientId = id('na-sub');
  let sub;
  try {
    // the attacker: persistent session, subscribes, receives, never answers
    sub = await mqtt.connect(port, { clientId, clean: false, noAck: true });
    await sub.subscribe('na/t', 1);
    await pub.publish('na/t', 'unacked', { qos: 1 });
    const first = await sub.waitFor((m) => m.topic === 'na/t', 3000);
    assert.strictEqual(first.dup, false);
    await h.sleep(100);
    await sub.destroy();

    // same session, an acknowledging client: the broker still holds the message as in flight
    sub = await mqtt.connect(port, { clientId, clean: false });
    assert.strictEqual(sub.connack.sessionPresent, true);
    const again = await sub.waitFor((m) => m.topic === 'na/t', 3000);
    assert.strictEqual(again.payload.toString(), 'unacked');
    assert.strictEqual(again.dup, true);
    assert.strictEqual(again.packetId, first.packetId);
    await h.sleep(100);
    await sub.destroy();

    // acknowledged this time: nothing comes back
    sub = await mqtt.connect(port, { clientId, clean: false });
    await h.sleep(300);
    assert.deepStrictEqual(sub.messages, []);
  } finally {
    await pub.disconnect();
    if (sub) await sub.destroy();
    const clean = await mqtt.connect(port, { clientId, clean: true }); // drop the session
    await clean.disconnect();
  }
});

test('a paused client (reading nothing) still disconnects', async () => {
  const c = await mqtt.connect(port, { clientId: id('paused') });
  await c.subscribe('paused/t', 0);
  c.pause();
  const pub = await mqtt.connect(port, { clientId: id('paused-pub') });
  await pub.publishMany('paused/t', Array.from({ length: 100 }, () => 'y'));
  await pub.disconnect();
  await h.sleep(100);
  assert.strictEqual(c.received, 0, 'nothing read while paused');
  const t0 = Date.now();
  await c.disconnect({ timeoutMs: 500 });
  assert.ok(Date.now() - t0 < 2000);
});

test('operations on a closed client reject instead of hanging', async () => {
  const c = await mqtt.connect(port, { clientId: id('closed') });
  const waiting = c.waitFor((m) => m.topic === 'never', 5000);
  await c.destroy();
  await assert.rejects(waiting, /closed/);
  await assert.rejects(c.publish('x', 'y', { qos: 1 }), /closed/);
  await assert.rejects(c.subscribe('x', 1), /closed/);
});

test('no CONNACK: connect rejects', async () => {
  const silent = net.createServer((s) => s.on('data', () => {}));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    await assert.rejects(mqtt.connect(silent.address().port, { clientId: 'x', timeoutMs: 300 }), /no CONNACK/);
  } finally {
    silent.close();
  }
});
