'use strict';
// A broken configuration stops the broker at start-up with a log line naming the option.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

async function expectRefusal(options, pattern) {
  const env = await h.startEnv({ ...options, expectFailure: true });
  try {
    assert.ok(env.failure, 'the broker exited');
    assert.notStrictEqual(env.failure.code, 0, 'with a non-zero status');
    assert.match(env.broker.log(), pattern);
    env.assertLogClean();
  } finally {
    await env.stop();
  }
}

test('unknown option', () => expectRefusal({ pluginOptions: { colour: 'blue' } }, /mosquitto_bootstrap: plugin_opt_colour: unknown option/));
test('missing product_key', () => expectRefusal({ pluginOptions: { product_key: null } }, /mosquitto_bootstrap: plugin_opt_product_key: required/));
test('bad max_inflight', () => expectRefusal({ pluginOptions: { max_inflight: 'many' } }, /plugin_opt_max_inflight: 'many' is not a number/));
test('bad http_timeout_ms', () => expectRefusal({ pluginOptions: { http_timeout_ms: '5' } }, /plugin_opt_http_timeout_ms/));
test('http:// to a host that is not loopback', () => expectRefusal({ pluginOptions: { endpoint: 'http://iot.cn-shanghai.aliyuncs.com/' } }, /plugin_opt_endpoint: http:\/\/ is only allowed for loopback/));
test('reply_topic without the placeholder', () => expectRefusal({ pluginOptions: { reply_topic: 'bootstrap/reply' } }, /plugin_opt_reply_topic/));
test('request_topic with a wildcard', () => expectRefusal({ pluginOptions: { request_topic: 'bootstrap/#' } }, /plugin_opt_request_topic/));
// without ALIBABA_CLOUD_ECS_METADATA_DISABLED the chain ends with the ECS RAM role, tried at run time
test('no credentials at all', () => expectRefusal({ credentials: 'none', brokerEnv: { ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' } },
  /no platform credentials \(environment: not set; OIDC: not set; credentials file: [^;]*; ECS: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true\): set ALIBABA_CLOUD_ACCESS_KEY_ID/));
test('a secret inline in mosquitto.conf is refused and not echoed', () => expectRefusal({ pluginOptions: { access_key_secret: 'INLINE-SECRET-VALUE' } }, /plugin_opt_access_key_secret: credentials are never read from mosquitto.conf/)
  .then(async () => {
    const env = await h.startEnv({ pluginOptions: { access_key_secret: 'INLINE-SECRET-VALUE' }, expectFailure: true });
    try { assert.ok(!env.broker.log().includes('INLINE-SECRET-VALUE'), 'the inline secret was logged'); } finally { await env.stop(); }
  }));

// A secret file with permissions for others stops the broker, and its content is not logged.
async function expectSecretFileRefused(option, content, mode, options) {
  const dir = h.makeWorkdir();
  const f = path.join(dir, option);
  fs.writeFileSync(f, content);
  fs.chmodSync(f, mode);
  h.giveToBroker(f);
  try {
    const env = await h.startEnv({ ...options(f), expectFailure: true });
    try {
      assert.match(env.broker.log(), new RegExp(`plugin_opt_${option}: .* is accessible by group or others \\(mode ${mode.toString(8)}\\)`));
      assert.ok(!env.broker.log().includes('SECRET-VALUE'), 'the file\'s secret was logged');
    } finally { await env.stop(); }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('a credentials file readable by others is refused', () => expectSecretFileRefused('credentials_file',
  '[default]\naccess_key_id = LTAIx\naccess_key_secret = FILE-SECRET-VALUE\n', 0o644,
  (f) => ({ credentials: 'none', pluginOptions: { credentials_file: f } })));

test('sign (the default) without a product secret file', () => expectRefusal({ pluginOptions: { product_secret_file: null } },
  /mosquitto_bootstrap: plugin_opt_request_auth: sign \(the default\) needs plugin_opt_product_secret_file/));
test('bad request_auth', () => expectRefusal({ pluginOptions: { request_auth: 'maybe' } }, /plugin_opt_request_auth: 'maybe' is not sign, identity or none/));
test('bad identity_field', () => expectRefusal({ requestAuth: 'identity', pluginOptions: { identity_field: 'username' } },
  /plugin_opt_identity_field: 'username' is not cn, san_dns or san_uri/));
test('identity_field without request_auth identity', () => expectRefusal({ pluginOptions: { identity_field: 'cn' } },
  /mosquitto_bootstrap: plugin_opt_identity_field: only used with plugin_opt_request_auth identity/));
test('bad existing_devices', () => expectRefusal({ pluginOptions: { existing_devices: 'sometimes' } }, /plugin_opt_existing_devices/));
test('bad acl', () => expectRefusal({ pluginOptions: { acl: 'open' } }, /plugin_opt_acl: 'open' is not strict or defer/));

test('a product secret file readable by others is refused, and not echoed', () => expectSecretFileRefused('product_secret_file',
  'PRODUCT-SECRET-VALUE\n', 0o644, (f) => ({ pluginOptions: { product_secret_file: f } })));

test('per_listener_settings true on 2.0.11 stops the broker\'s tick: the plugin says so once requests wait', async () => {
  await h.withEnv({ globalConfig: 'per_listener_settings true' }, async (env) => {
    const r = await env.rr('dev-notick-1', { timeoutS: 7 });
    assert.strictEqual(r.reply, null, 'no reply can go out without the tick');
    for (let i = 0; i < 40 && !/has not ticked/.test(env.broker.log()); i++) await h.sleep(50);
    assert.match(env.broker.log(), /mosquitto_bootstrap: the broker has not ticked for \d+ s, so replies cannot go out: per_listener_settings true/);
    assert.strictEqual((env.broker.log().match(/has not ticked/g) || []).length, 1, 'said once');
  });
});
