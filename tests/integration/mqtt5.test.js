'use strict';
// MQTT 5 request/response: the Response Topic is used and the Correlation Data echoed, still
// to the device's own client only; bad Response Topics are refused; v3.1.1 keeps working.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

const { withEnv } = h;

// mosquitto_rr prints "<correlation data>|<topic>|<payload>"
function parse(stdout) {
  const line = stdout.trim().split('\n').pop() || '';
  const [corr, topic, ...rest] = line.split('|');
  return { corr, topic, reply: rest.length ? JSON.parse(rest.join('|')) : null };
}

test('v5: reply on the Response Topic with the Correlation Data echoed', async () => {
  await withEnv({}, async (env) => {
    const random = 'v5-random-0001';
    const r = await h.rr(env.port, { id: 'dev-v5-01', message: env.request('dev-v5-01', { random }), responseTopic: 'bootstrap/reply/dev-v5-01/session-7',
      extra: ['-V', '5', '-D', 'PUBLISH', 'correlation-data', 'corr-1234', '-F', '%D|%t|%p'] });
    const m = parse(r.stdout);
    assert.strictEqual(m.topic, 'bootstrap/reply/dev-v5-01/session-7');
    assert.strictEqual(m.corr, 'corr-1234');
    assert.strictEqual(m.reply.success, true);
    const triple = h.openSealed(m.reply, { productSecret: env.productSecret, random, productKey: env.productKey, deviceId: 'dev-v5-01' });
    h.assertSameSecret(triple.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-v5-01').DeviceSecret, 'DeviceSecret');
  });
});

test('v5: a Response Topic with a wildcard, too long, or outside the prefix gets invalid_request, with no platform call', async () => {
  // beside an allow-all acl_file, so that mosquitto_rr may subscribe anywhere and only the
  // plugin's own check of the Response Topic is tested
  const dir = h.makeWorkdir();
  const acl = h.aclFileAllowingAll(dir);
  try {
    await withEnv({ pluginOptions: { acl: 'defer' }, extraConfig: `acl_file ${acl}` }, async (env) => {
      // mosquitto_rr will not send a wildcard Response Topic: a raw v5 client does
      const w = await h.requestRaw(env.port, { id: 'dev-v5-02', payload: env.request('dev-v5-02'), version: 5,
        properties: { responseTopic: 'bootstrap/reply/dev-v5-02/#' } });
      assert.strictEqual(w.topic, 'bootstrap/reply/dev-v5-02', 'wildcard');
      assert.strictEqual(w.reply.code, 'invalid_request', 'wildcard');
      // too long: mosquitto_rr would subscribe to it first, which the plugin refuses (a level
      // below one's own reply topic is at most 64 bytes): a raw v5 client asks without
      const long = await h.requestRaw(env.port, { id: 'dev-v5-06', payload: env.request('dev-v5-06'), version: 5,
        properties: { responseTopic: 'bootstrap/reply/dev-v5-06/' + 'x'.repeat(240) } });
      assert.strictEqual(long.topic, 'bootstrap/reply/dev-v5-06', 'too long');
      assert.strictEqual(long.reply.code, 'invalid_request', 'too long');
      for (const [what, topic] of [['outside the prefix', 'elsewhere/dev-v5-03']]) {
        const r = await h.rr(env.port, { id: 'dev-v5-03', message: env.request('dev-v5-03'), responseTopic: topic, extra: ['-V', '5', '-F', '%t|%p'] });
        const line = r.stdout.trim();
        // refused requests are answered on the requester's own reply topic, not the bad one
        assert.strictEqual(line.split('|')[0], 'bootstrap/reply/dev-v5-03', what);
        assert.strictEqual(JSON.parse(line.slice(line.indexOf('|') + 1)).code, 'invalid_request', what);
      }
      assert.strictEqual(env.emu.stats().requests, 0);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a Response Topic in another client\'s request for the device is refused with the request; v3.1.1 uses the reply topic', async () => {
  await withEnv({}, async (env) => {
    const device = h.sub(env.port, { id: 'dev-v5-05', topics: ['bootstrap/reply/dev-v5-05/#'] });
    await device.ready;
    const meddler = await mqtt.connect(env.port, { clientId: 'meddler', version: 5 });
    await meddler.publish('bootstrap/register', env.request('dev-v5-05'), { qos: 1, properties: { responseTopic: 'bootstrap/reply/dev-v5-05/elsewhere' } });
    const told = await meddler.waitFor(() => true, 5000);
    await meddler.disconnect();
    assert.strictEqual(JSON.parse(told.payload).code, 'unauthorized', 'the meddler is told why');
    await h.sleep(300);
    assert.strictEqual((await device.messages()).length, 0, 'the meddler chose where the device hears something');
    assert.strictEqual(env.emu.stats().requests, 0);
    const v311 = await env.rr('dev-v5-04', { extra: ['-V', '311'] });
    assert.strictEqual(v311.reply.success, true);
  });
});
