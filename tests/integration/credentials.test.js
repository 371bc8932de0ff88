'use strict';
// Credentials as Alibaba's libraries find them (issue 11): each source of the default chain
// bootstraps devices against the emulator's metadata service, STS and credentials URI;
// short-lived credentials renew themselves with no platform_auth; a metadata service that
// refuses for a while; the start-up check names what is wrong.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const ROLE = 'BootstrapEcsRole';
const ROLE_ARN = 'acs:ram::1234567890123456:role/bootstrap';
const OIDC_PROVIDER_ARN = 'acs:ram::1234567890123456:oidc-provider/ack-rrsa-test';

const waitForLog = (env, re, timeoutMs = 10000) => h.waitForLog(env, re, timeoutMs);
const assertServes = h.assertServes;

const emulator = (ttlS = 3600) => ({ credentials: { roleName: ROLE, roleArn: ROLE_ARN, oidcProviderArn: OIDC_PROVIDER_ARN, ttlS } });

test('ECS instance RAM role (IMDSv2): devices bootstrap with the role\'s temporary credentials; the check passes', async () => {
  await h.withEnv(await h.operatorOptions({ credentials: 'none', emulator: emulator(), brokerEnv: { ALIBABA_CLOUD_ECS_METADATA: ROLE },
    pluginOptions: { ecs_metadata_endpoint: 'http://127.0.0.1:$EMUPORT' } }), async (env) => {
    await assertServes(env, 'dev-ecs-001');
    const calls = env.emu.credentialStats().calls;
    assert.ok(calls.metadataToken >= 1 && calls.metadataCredentials >= 1, 'the session token first, then the role\'s credentials');
    await h.waitForSys(env, 'platform/credentials', (v) => /^accepted \(they expire at \d{4}-/.test(v));
    await h.waitForSys(env, 'platform/status', (v) => v === 'ok');
    assert.ok(env.emu.stats().checks.requests >= 1, 'the start-up check reached the platform');
  });
});

test('ram_role_arn profile: STS AssumeRole signed with the file\'s key', async () => {
  await h.withEnv(await h.operatorOptions({ emulator: emulator(), pluginOptions: { sts_endpoint: 'http://127.0.0.1:$EMUPORT/' },
    credentials: { type: 'ram_role_arn', access_key_id: '$KEY_ID', access_key_secret: '$KEY_SECRET', role_arn: ROLE_ARN, role_session_name: 'broker-1' } }), async (env) => {
    await assertServes(env, 'dev-arn-001');
    assert.ok(env.emu.credentialStats().calls.AssumeRole >= 1);
    await h.waitForSys(env, 'platform/credentials', (v) => /^accepted \(they expire at \d{4}-/.test(v));
  });
});

test('OIDC from the environment, as ACK RRSA injects it: AssumeRoleWithOIDC with the token file', async () => {
  const dir = h.makeWorkdir();
  try {
    const token = 'eyJhbGciOiJSUzI1NiJ9.' + Buffer.from(JSON.stringify({ sub: 'system:serviceaccount:iot:broker', iss: 'https://oidc.test' })).toString('base64url') + '.c2ln';
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, token + '\n', { mode: 0o644 });
    h.giveToBroker(dir);
    await h.withEnv({ credentials: 'none', emulator: { credentials: { ...emulator().credentials, oidcToken: token } },
      brokerEnv: { ALIBABA_CLOUD_ROLE_ARN: ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN: OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE: tokenFile },
      pluginOptions: { sts_endpoint: 'http://127.0.0.1:$EMUPORT/' } }, async (env) => {
      await assertServes(env, 'dev-oidc-001');
      assert.ok(env.emu.credentialStats().calls.AssumeRoleWithOIDC >= 1);
      assert.ok(!env.broker.log().includes(token), 'the OIDC token was logged');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a credentials URI from the environment', async () => {
  await h.withEnv(await h.operatorOptions({ credentials: 'none', emulator: emulator(), brokerEnv: { ALIBABA_CLOUD_CREDENTIALS_URI: 'http://127.0.0.1:$EMUPORT/_credentials' } }), async (env) => {
    await assertServes(env, 'dev-uri-001');
    assert.ok(env.emu.credentialStats().calls.credentialsUri >= 1);
    await h.waitForSys(env, 'platform/credentials', (v) => /^accepted \(they expire at \d{4}-/.test(v));
  });
});

test('credentials that live 9 s are renewed across a 27 s run: every device gets its triple, zero platform_auth', async () => {
  // renewed a third of their life ahead (3 s): fetched about every 6 s, 4 or 5 times in the run
  await h.withEnv({ credentials: 'none', emulator: emulator(9), brokerEnv: { ALIBABA_CLOUD_ECS_METADATA: ROLE },
    pluginOptions: { ecs_metadata_endpoint: 'http://127.0.0.1:$EMUPORT' } }, async (env) => {
    const t0 = Date.now();
    const codes = {};
    for (let i = 0; Date.now() - t0 < 27000; i++) {
      const r = await env.rr(`dev-renew-${String(i).padStart(3, '0')}`, { timeoutS: 20 });
      const code = r.reply ? (r.reply.success ? 'ok' : r.reply.code) : 'no_reply';
      codes[code] = (codes[code] || 0) + 1;
      await h.sleep(200);
    }
    const c = env.emu.credentialStats();
    assert.deepStrictEqual(Object.keys(codes), ['ok'], `every device its triple: ${JSON.stringify(codes)}`);
    assert.ok(codes.ok >= 30, `${codes.ok} bootstraps in the run`);
    assert.ok(c.calls.metadataCredentials >= 4, `${c.calls.metadataCredentials} fetches: renewed before each expiry`);
    assert.strictEqual(c.iotRefusedExpired, 0, 'no call was signed with expired credentials');
  });
});

test('the platform calls a token expired early (its clock ahead of ours): the token is renewed at once and the call retried; no platform_auth', async () => {
  await h.withEnv(await h.operatorOptions({ credentials: 'none', emulator: emulator(3600), brokerEnv: { ALIBABA_CLOUD_ECS_METADATA: ROLE },
    pluginOptions: { ecs_metadata_endpoint: 'http://127.0.0.1:$EMUPORT', audit_file: '$DIR/audit.log' } }), async (env) => {
    await assertServes(env, 'dev-early-001');
    const fetched = env.emu.credentialStats().calls.metadataCredentials;
    await env.emu.expireIssuedCredentials();
    await assertServes(env, 'dev-early-002');
    const c = env.emu.credentialStats();
    assert.ok(c.iotRefusedExpired >= 1, `the platform refused ${c.iotRefusedExpired} call(s) as expired`);
    assert.ok(c.calls.metadataCredentials > fetched, 'renewed at once, not at the hour the token claimed');
    assert.ok(!/platform_auth/.test(fs.readFileSync(path.join(env.dir, 'audit.log'), 'utf8')), 'no device was told platform_auth');
  });
});

test('the metadata service refuses for a while: current credentials carry on, then expire; devices wait, and are served once it is back', async () => {
  await h.withEnv(await h.operatorOptions({ credentials: 'none', emulator: emulator(12), brokerEnv: { ALIBABA_CLOUD_ECS_METADATA: ROLE },
    pluginOptions: { ecs_metadata_endpoint: 'http://127.0.0.1:$EMUPORT', audit_file: '$DIR/audit.log' } }), async (env) => {
    await assertServes(env, 'dev-down-001');
    env.emu.setCredentialsRefusal(true, 503);
    // renewal is due 4 s before expiry: it fails, the current ones stay in use
    await h.waitForSys(env, 'platform/credentials', (v) => /^failing: HTTP 503/.test(v));
    await assertServes(env, 'dev-down-002');
    await h.waitForSys(env, 'platform/credentials', (v) => /^expired: HTTP 503/.test(v));
    // a device that asks now waits for credentials instead of failing
    const waiting = env.rr('dev-down-003', { timeoutS: 40 });
    await h.sleep(3000);
    env.emu.setCredentialsRefusal(false);
    const r = await waiting;
    assert.strictEqual(r.reply && r.reply.success, true, 'the waiting device got its triple once credentials came back');
    await h.waitForSys(env, 'platform/credentials', (v) => /^accepted \(they expire at \d{4}-/.test(v), { timeoutMs: 5000 });
    assert.strictEqual(env.emu.credentialStats().iotRefusedExpired, 0);
    assert.ok(!/platform_auth/.test(fs.readFileSync(path.join(env.dir, 'audit.log'), 'utf8')));
  });
});

test('the start-up check: a wrong AccessKey secret and a wrong ProductKey are named in one error line and in $SYS; the broker still starts', async () => {
  const dir = h.makeWorkdir();
  try {
    const acl = h.aclFileAllowingAll(dir);
    const readStatus = async (env, topic = 'status') => {
      const s = await h.run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), '-t', `$SYS/broker/bootstrap/platform/${topic}`, '-C', '1', '-W', '5']);
      return s.stdout.trim();
    };
    await h.withEnv({ credentials: 'none', brokerEnv: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAIunknownkey0001', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'not-the-secret' },
      pluginOptions: { acl: 'defer' }, extraConfig: `acl_file ${acl}` }, async (env) => {
      await waitForLog(env, /platform check: refused: InvalidAccessKeyId\.NotFound: the AccessKey id is unknown or disabled: check the credentials source; not a RAM permission/);
      assert.match(await readStatus(env), /^refused: InvalidAccessKeyId\.NotFound/);
      // found is not accepted: the credentials' own state says the platform refused them
      await waitForLog(env, /platform credentials \(environment, access key\): the platform refused them: InvalidAccessKeyId\.NotFound/);
      assert.strictEqual(await readStatus(env, 'credentials'), 'refused: InvalidAccessKeyId.NotFound');
      assert.doesNotMatch(env.broker.log(), /platform credentials.*\b(valid|accepted)\b|accepts these credentials/);
      env.secrets.push('not-the-secret');
    });
    await h.withEnv({ pluginOptions: { product_key: 'a1WrongProduct', acl: 'defer' }, extraConfig: `acl_file ${acl}` }, async (env) => {
      await waitForLog(env, /platform check: refused: iot\.prod\.NotExistedProduct: check plugin_opt_product_key/);
      assert.match(await readStatus(env), /^refused: iot\.prod\.NotExistedProduct/);
    });
    await h.withEnv({ pluginOptions: { acl: 'defer' }, extraConfig: `acl_file ${acl}` }, async (env) => {
      await waitForLog(env, /platform check: the platform accepts these credentials, product a1TestProduct/);
      assert.strictEqual(await readStatus(env), 'ok');
      // found first, accepted once the platform answered
      const log = env.broker.log();
      const found = log.search(/platform credentials \(environment, access key\): found; the platform has not yet answered/);
      const accepted = log.search(/platform credentials \(environment, access key\): the platform accepted them/);
      assert.ok(found >= 0 && accepted > found, 'found, then accepted');
      assert.strictEqual(await readStatus(env, 'credentials'), 'accepted');
      assert.strictEqual(env.emu.stats().requests, 0, 'the check is not a device\'s call');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
