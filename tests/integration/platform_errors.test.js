'use strict';
// What a device hears when the platform says no, breaks, throttles or hangs.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

async function withEnv(options, fn) {
  const env = await h.startEnv(options);
  try {
    await fn(env);
    env.assertLogClean();
  } finally {
    await env.stop();
  }
}

test('a wrong AccessKey secret answers platform_auth (the emulator rejects the signature)', async () => {
  await withEnv({ credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'wrong-' + Date.now() } }, async (env) => {
    const r = await env.rr('dev-auth1');
    assert.strictEqual(r.reply.success, false);
    assert.strictEqual(r.reply.code, 'platform_auth');
    assert.match(r.reply.message, /SignatureDoesNotMatch/);
    assert.strictEqual(r.reply.retryAfter, undefined);
    assert.strictEqual(env.emu.stats().signatureFailures, 1);
    assert.strictEqual(env.emu.deviceCount(), 0);
  });
});

test('an unknown AccessKeyId answers platform_auth', async () => {
  await withEnv({ credentialsOverride: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAIunknown' } }, async (env) => {
    const r = await env.rr('dev-auth2');
    assert.strictEqual(r.reply.code, 'platform_auth');
    assert.match(r.reply.message, /InvalidAccessKeyId.NotFound/);
  });
});

test('platform 5xx, garbage and dropped connections answer platform_unavailable with retryAfter', async () => {
  await withEnv({}, async (env) => {
    const cases = [
      [{ kind: '5xx', status: 503 }, /ServiceUnavailable/],
      [{ kind: '5xx', status: 500, code: 'InternalError' }, /InternalError/],
      [{ kind: 'garbage' }, /usable answer/],
      // count 2: curl itself retries once when a reused connection dies before any answer
      [{ kind: 'drop', count: 2 }, /could not be reached/],
    ];
    let i = 0;
    for (const [fault, message] of cases) {
      const id = `dev-fail${i++}`;
      env.emu.addFaults(fault);
      const r = await env.rr(id);
      assert.strictEqual(r.reply && r.reply.code, 'platform_unavailable', `code after ${fault.kind}`);
      assert.match(r.reply.message, message);
      assert.ok(Number.isInteger(r.reply.retryAfter) && r.reply.retryAfter > 0, 'retryAfter is a positive integer');
    }
    // and the broker keeps serving: the next request goes through
    const ok = await env.rr('dev-after');
    assert.strictEqual(ok.reply.success, true);
  });
});

test('Throttling.User answers throttled with retryAfter', async () => {
  await withEnv({}, async (env) => {
    env.emu.addFaults({ kind: 'throttle', status: 400 });
    const r = await env.rr('dev-thr1');
    assert.strictEqual(r.reply.code, 'throttled');
    assert.ok(r.reply.retryAfter > 0);
  });
});

test('a platform slower than http_timeout_ms answers platform_unavailable', async () => {
  await withEnv({ pluginOptions: { http_timeout_ms: 300 } }, async (env) => {
    env.emu.setLatency(1500);
    const t0 = Date.now();
    const r = await env.rr('dev-slow1');
    assert.strictEqual(r.reply.code, 'platform_unavailable');
    assert.match(r.reply.message, /[Tt]imeout/);
    assert.ok(Date.now() - t0 < 1400, 'answered when the HTTP timeout expired, not when the platform did');
  });
});

test('a business error passes the platform code through as platform_error', async () => {
  await withEnv({ pluginOptions: { product_key: 'a1NoSuchProduct' } }, async (env) => {
    const r = await env.rr('dev-biz1');
    assert.strictEqual(r.reply.code, 'platform_error');
    assert.match(r.reply.message, /iot\.prod\.NotExistedProduct/);
    assert.strictEqual(r.reply.retryAfter, undefined);
  });
});

test('iot_instance_id is sent as IotInstanceId', async () => {
  await withEnv({ emulator: { iotInstanceId: 'iot-cn-test01' }, pluginOptions: { iot_instance_id: 'iot-cn-test01' } }, async (env) => {
    const r = await env.rr('dev-inst1');
    assert.strictEqual(r.reply.success, true);
  });
  await withEnv({ emulator: { iotInstanceId: 'iot-cn-test01' } }, async (env) => {
    const r = await env.rr('dev-inst2');
    assert.strictEqual(r.reply.code, 'platform_error');
    assert.match(r.reply.message, /InstanceNotFound/);
  });
});

test('credentials from a 0600 credentials_file work', async () => {
  await withEnv({ credentials: 'file' }, async (env) => {
    const r = await env.rr('dev-file1');
    assert.strictEqual(r.reply.success, true);
    assert.match(env.broker.log(), /credentials from file/);
  });
});
