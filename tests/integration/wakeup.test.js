'use strict';
// plugin_opt_wakeup_port: the worker wakes the broker through a loopback client connection
// (a PINGREQ per batch of results) instead of waiting for the idle tick.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

test('with wakeup_port the worker pokes the broker once results are ready', async () => {
  const env = await h.startEnv({ pluginOptions: { wakeup_port: '$PORT' } });
  try {
    for (let i = 0; i < 5; i++) assert.strictEqual((await env.rr(`dev-w00${i}`)).reply.success, true);
    const log = env.broker.log();
    assert.match(log, /New client connected from 127\.0\.0\.1:\d+ as mosquitto_bootstrap-wakeup/);
    const pings = (log.match(/Received PINGREQ from mosquitto_bootstrap-wakeup/g) || []).length;
    assert.ok(pings >= 5, `${pings} wakeups for 5 replies`);
    await env.broker.stop();
    assert.doesNotMatch(env.broker.log(), /mosquitto_bootstrap-wakeup closed its connection unexpectedly|Socket error on client mosquitto_bootstrap-wakeup/);
    env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('a listener that refuses anonymous clients: a warning, and replies still go out at the tick', async () => {
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { 'dev-w100': 'device-password' });
  try {
    const env = await h.startEnv({ pluginOptions: { wakeup_port: '$PORT' }, extraConfig: `allow_anonymous false\npassword_file ${pw}` });
    try {
      const r = await env.rr('dev-w100', { extra: ['-u', 'dev-w100', '-P', 'device-password'] });
      assert.strictEqual(r.reply.success, true);
      // the worker's state reaches the broker on its next loop, and is checked once a second
      const warning = /mosquitto_bootstrap: plugin_opt_wakeup_port \d+: the broker refused the wakeup connection/;
      for (let i = 0; i < 50 && !warning.test(env.broker.log()); i++) await h.sleep(100);
      assert.match(env.broker.log(), warning);
      assert.strictEqual((await env.rr('dev-w100', { extra: ['-u', 'dev-w100', '-P', 'device-password'] })).reply.success, true);
      env.assertLogClean();
    } finally {
      await env.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Issue 18, item 8: whoever took the wakeup connection's client id on the public listener closed
// it (a client-id takeover), and replies waited for the broker's idle tick (up to 100 ms) for as
// long as it held the id. Outsiders now try the old id, the prefix and guesses of the new form,
// and reconnect at once whenever they are closed: the waker is never displaced and replies keep
// their latency. The waker's id is random, and the plugin never logs it.
test('an outsider cannot displace the wakeup connection: old id, prefix and guessed ids change nothing; a leaked id costs one reconnect', async () => {
  const mqtt = require('./lib/mqtt_raw');
  const crypto = require('crypto');
  // the layout of mosquitto.conf.example: devices and outsiders on a public listener, the waker
  // on the loopback listener of its own (the environment's). Quotas far above what the test
  // asks: no request waits for the pacing, which would hide the tick.
  const publicPort = await h.freePort();
  const env = await h.startEnv({ pluginOptions: { wakeup_port: '$PORT', register_qps: 1000, query_qps: 1000 },
    extraConfig: `listener ${publicPort} 127.0.0.1` });
  const attackers = [];
  let stopping = false;
  // one request on a connection of its own; ms from the publish to the reply
  const timed = async (id) => {
    const c = await mqtt.connect(publicPort, { clientId: id });
    try {
      await c.subscribe(`bootstrap/reply/${id}`, 1);
      const t0 = process.hrtime.bigint();
      // QoS 0: a PUBACK ahead of the reply would hold it back by a delayed ACK (Nagle's algorithm
      // on the broker's socket), 40 ms that are not the plugin's
      await c.publish('bootstrap/register', env.request(id), { qos: 0 });
      const m = await c.waitFor((x) => x.topic === `bootstrap/reply/${id}`, 10000);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.strictEqual(JSON.parse(m.payload.toString()).success, true, `${id} got its triple`);
      return ms;
    } finally {
      await c.disconnect();
    }
  };
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // an outsider that holds clientId, and takes it back at once whenever it loses it
  const holdId = (clientId) => {
    const a = { clientId, connections: 0 };
    const loop = async () => {
      while (!stopping) {
        try {
          const c = await mqtt.connect(publicPort, { clientId, keepAlive: 0 });
          a.connections++;
          a.client = c;
          if (stopping) c.destroy(); // connected while the test was ending
          await c.closed;
        } catch (e) { await h.sleep(5); }
      }
    };
    a.done = loop();
    attackers.push(a);
    return a;
  };
  try {
    const N = 15;
    const before = [];
    for (let i = 0; i < N; i++) before.push(await timed(`dev-lat-a${String(i).padStart(2, '0')}`));
    const connected = /New client connected from 127\.0\.0\.1:\d+ as (mosquitto_bootstrap-wakeup\S*) /.exec(env.broker.log());
    assert.ok(connected, 'the waker connected');
    const wakerId = connected[1];

    for (const id of ['mosquitto_bootstrap-wakeup', 'mosquitto_bootstrap-wakeup-', 'mosquitto_bootstrap-wakeup-0',
      'mosquitto_bootstrap-wakeup-' + '0'.repeat(32), 'mosquitto_bootstrap-wakeup-' + crypto.randomBytes(16).toString('hex')]) holdId(id);
    for (let i = 0; i < 100 && attackers.some((a) => a.connections === 0); i++) await h.sleep(20);
    assert.ok(attackers.every((a) => a.connections > 0), 'every outsider connected');

    const during = [];
    for (let i = 0; i < N; i++) during.push(await timed(`dev-lat-b${String(i).padStart(2, '0')}`));
    const log = env.broker.log();
    const displaced = (log.match(/Client mosquitto_bootstrap-wakeup\S* already connected, closing old connection/g) || []).length;
    console.log(`median reply ms: before ${median(before).toFixed(1)}, during the attack ${median(during).toFixed(1)}; ` +
      `wakeup connection closed by a takeover ${displaced} times; outsiders' connections ${attackers.map((a) => a.connections).join(', ')}`);
    assert.strictEqual(displaced, 0, 'the wakeup connection was taken over');
    assert.strictEqual(log.split('\n').filter((l) => /New client connected from /.test(l) && l.includes(` as ${wakerId} `)).length, 1,
      'the waker kept its one connection');
    // the idle tick is 100 ms: without the waker, replies wait 50 ms on average
    assert.ok(median(during) < 35, `replies fell back to the tick during the attack: median ${median(during).toFixed(1)} ms`);
    assert.ok(attackers.every((a) => a.connections === 1), 'no outsider was ever closed (no fight over an id)');
    assert.match(wakerId, /^mosquitto_bootstrap-wakeup-[0-9a-f]{32}$/, 'a client id with 128 random bits');
    // the broker names the client in its own connection lines; the plugin never does
    assert.ok(!log.split('\n').some((l) => l.includes('mosquitto_bootstrap:') && l.includes(wakerId.slice(-32))), 'the plugin logged the waker\'s id');

    // Were the id to leak (the broker's log names it; only the operator reads that), a takeover
    // would close the waker once: it comes back at once under a new id, and the leaked one is
    // worth nothing. The outsider keeps reconnecting with it.
    const leaked = holdId(wakerId);
    for (let i = 0; i < 100 && leaked.connections === 0; i++) await h.sleep(20);
    const after = [];
    for (let i = 0; i < N; i++) after.push(await timed(`dev-lat-c${String(i).padStart(2, '0')}`));
    const ids = [...env.broker.log().matchAll(/New client connected from 127\.0\.0\.1:\d+ as (mosquitto_bootstrap-wakeup-[0-9a-f]{32}) /g)]
      .map((m) => m[1]).filter((id) => !attackers.some((a) => a.clientId === id));
    const takeovers = (env.broker.log().match(/Client \S+ already connected, closing old connection/g) || []).length;
    console.log(`with the waker's id leaked: ${takeovers} takeover; median reply ms ${median(after).toFixed(1)}; the waker's new connections ${ids.length}`);
    assert.strictEqual(takeovers, 1, 'the leaked id took the waker\'s connection over, once');
    assert.strictEqual(ids.length, 1, 'the waker came back once, under a new id');
    assert.notStrictEqual(ids[0], wakerId);
    assert.ok(median(after) < 35, `replies fell back to the tick after the takeover: median ${median(after).toFixed(1)} ms`);
    assert.strictEqual(leaked.connections, 1, 'the outsider holds the old id undisturbed: no fight');
    env.assertLogClean();
  } finally {
    stopping = true;
    for (const a of attackers) if (a.client) a.client.destroy();
    await Promise.all(attackers.map((a) => a.done));
    await env.stop();
  }
});
