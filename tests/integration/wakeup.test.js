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
