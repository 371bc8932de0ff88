'use strict';
// The default credentials chain as Alibaba's official libraries build it (issue 19, item 5), one
// test per row of the README's table "The chain: official behaviour and ours", against the
// emulator's metadata service and STS (the metadata service is reached on loopback through
// plugin_opt_ecs_metadata_endpoint; in production it is http://100.100.100.200). And credentials
// go only where the operator said (issue 18, item 6): a credentials URI that is neither https nor
// loopback stops the broker at start.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const ROLE = 'BootstrapEcsRole';
const ROLE_ARN = 'acs:ram::1234567890123456:role/bootstrap';
const OIDC_PROVIDER_ARN = 'acs:ram::1234567890123456:oidc-provider/ack-rrsa-test';
const METADATA = { ecs_metadata_endpoint: 'http://127.0.0.1:$EMUPORT' };
const STS = { sts_endpoint: 'http://127.0.0.1:$EMUPORT/' };

const { waitForLog, assertServes } = h;

const chainLine = (env) => (env.broker.log().match(/mosquitto_bootstrap: platform credentials chain: .*/g) || []);

const emulator = (extra = {}) => ({ credentials: { roleName: ROLE, roleArn: ROLE_ARN, oidcProviderArn: OIDC_PROVIDER_ARN, ...extra } });

// A private file the broker can read, in a directory of its own.
function privateFile(dir, name, text, mode = 0o600) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, { mode });
  fs.chmodSync(f, mode);
  h.giveToBroker(f);
  return f;
}

test('the ECS RAM role is in the chain without ALIBABA_CLOUD_ECS_METADATA: its name is asked of the metadata service (IMDSv2)', async () => {
  await h.withEnv(await h.operatorOptions({ credentials: 'none', emulator: emulator(), pluginOptions: METADATA }), async (env) => {
    await assertServes(env, 'dev-chain-ecs-001');
    const c = env.emu.credentialStats();
    assert.ok(c.calls.metadataToken >= 1 && c.calls.metadataRoleName >= 1 && c.calls.metadataCredentials >= 1, JSON.stringify(c.calls));
    assert.strictEqual(c.metadataUnauthorized, 0, 'every read carried its session token');
    assert.strictEqual(c.metadataWithoutToken, 0, 'IMDSv2 served: no read went without a token');
    await waitForLog(env, /platform credentials chain: using ECS metadata service \(role discovered\) \(ECS instance RAM role\); skipped: environment: not set; OIDC: not set; credentials file: /);
    assert.strictEqual(chainLine(env).length, 1, 'which source was used is logged once');
    await h.waitForSys(env, 'platform/status', (v) => v === 'ok');
  });
});

test('order: an AccessKey in the environment comes first; the ECS RAM role after it is never asked', async () => {
  await h.withEnv({ emulator: emulator(), pluginOptions: METADATA,
    brokerEnv: { ALIBABA_CLOUD_CREDENTIALS_URI: 'http://127.0.0.1:$EMUPORT/_credentials' } }, async (env) => {
    await assertServes(env, 'dev-chain-order-001');
    const c = env.emu.credentialStats();
    assert.strictEqual(c.calls.metadataToken + c.calls.metadataRoleName + c.calls.metadataCredentials + c.calls.credentialsUri, 0, JSON.stringify(c.calls));
    await waitForLog(env, /platform credentials chain: using environment \(access key\)$/m);
  });
});

test('plugin_opt_credentials_file is used alone: the OIDC variables and the ECS RAM role are not consulted', async () => {
  await h.withEnv({ credentials: 'file', emulator: emulator(), pluginOptions: { ...METADATA, ...STS },
    brokerEnv: { ALIBABA_CLOUD_ROLE_ARN: ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN: OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE: '/nonexistent/token' } }, async (env) => {
    await assertServes(env, 'dev-chain-file-001');
    const c = env.emu.credentialStats();
    assert.strictEqual(c.calls.AssumeRoleWithOIDC + c.calls.metadataToken + c.calls.metadataCredentials, 0, JSON.stringify(c.calls));
    await waitForLog(env, /platform credentials chain: using credentials file \(access key\)$/m);
  });
});

test('ALIBABA_CLOUD_ECS_METADATA_DISABLED=true leaves the ECS RAM role out: the credentials URI is used, the metadata service never asked', async () => {
  await h.withEnv({ credentials: 'none', emulator: emulator(), pluginOptions: METADATA,
    brokerEnv: { ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true', ALIBABA_CLOUD_CREDENTIALS_URI: 'http://127.0.0.1:$EMUPORT/_credentials' } }, async (env) => {
    await assertServes(env, 'dev-chain-noecs-001');
    const c = env.emu.credentialStats();
    assert.strictEqual(c.calls.metadataToken + c.calls.metadataRoleName + c.calls.metadataCredentials, 0, 'the metadata service was asked');
    assert.ok(c.calls.credentialsUri >= 1);
    await waitForLog(env, /platform credentials chain: using environment \(credentials URI\) \(credentials URI\); skipped: .*ECS: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true/);
  });
});

test('IMDSv1 fallback: a metadata service without session tokens still gives the role\'s credentials (no token header sent)', async () => {
  await h.withEnv(await h.operatorOptions({ credentials: 'none', emulator: emulator({ imds: 'v1' }), pluginOptions: METADATA,
    brokerEnv: { ALIBABA_CLOUD_ECS_METADATA: ROLE } }), async (env) => {
    await assertServes(env, 'dev-chain-v1-001');
    const c = env.emu.credentialStats();
    assert.ok(c.calls.metadataToken >= 1, 'the token was asked for first');
    assert.ok(c.metadataWithoutToken >= 1 && c.calls.metadataCredentials >= 1);
    assert.strictEqual(c.metadataUnauthorized, 0, 'no token header went to a service that issued none');
    await h.waitForSys(env, 'platform/credentials', (v) => /^accepted \(they expire at \d{4}-/.test(v));
  });
});

test('ALIBABA_CLOUD_IMDSV1_DISABLED=true: no token is a failure of the ECS source; the chain moves on to the credentials URI', async () => {
  await h.withEnv({ credentials: 'none', emulator: emulator({ imds: 'v1' }), pluginOptions: METADATA,
    brokerEnv: { ALIBABA_CLOUD_IMDSV1_DISABLED: 'true', ALIBABA_CLOUD_CREDENTIALS_URI: 'http://127.0.0.1:$EMUPORT/_credentials' } }, async (env) => {
    await assertServes(env, 'dev-chain-v1off-001');
    const c = env.emu.credentialStats();
    assert.ok(c.calls.metadataToken >= 1);
    assert.strictEqual(c.calls.metadataRoleName + c.calls.metadataCredentials, 0, 'a read without a token went out');
    assert.ok(c.calls.credentialsUri >= 1);
    await waitForLog(env, /platform credentials chain: using environment \(credentials URI\) \(credentials URI\); skipped: .*ECS metadata service \(role discovered\) \(ECS instance RAM role\): HTTP 404/);
  });
});

test('at run time the chain moves past a source that fails: OIDC refused by STS, then the ECS RAM role', async () => {
  const dir = h.makeWorkdir();
  try {
    const tokenFile = privateFile(dir, 'token', 'not-the-token-sts-knows\n', 0o644);
    await h.withEnv({ credentials: 'none', emulator: emulator(), pluginOptions: { ...METADATA, ...STS },
      brokerEnv: { ALIBABA_CLOUD_ROLE_ARN: ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN: OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE: tokenFile } }, async (env) => {
      await assertServes(env, 'dev-chain-move-001');
      const c = env.emu.credentialStats();
      assert.strictEqual(c.calls.AssumeRoleWithOIDC, 1, 'OIDC was tried once, then passed over');
      assert.strictEqual(c.oidcTokenRefused, 1);
      assert.ok(c.calls.metadataCredentials >= 1);
      await waitForLog(env, /platform credentials chain: using ECS metadata service \(role discovered\) \(ECS instance RAM role\); skipped: environment: not set; environment \(OIDC\) \(OIDC role \(STS AssumeRoleWithOIDC\)\): HTTP 401 AuthenticationFail\.OIDCToken\.Invalid; credentials file: /);
      assert.ok(!env.broker.log().includes('not-the-token-sts-knows'), 'the OIDC token was logged');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a credentials file that cannot be used (readable by others) is passed over with its reason, not a stop', async () => {
  const dir = h.makeWorkdir();
  try {
    const f = privateFile(dir, 'credentials', '[default]\naccess_key_id = LTAIfromfile\naccess_key_secret = FILE-SECRET-VALUE\n', 0o644);
    await h.withEnv({ credentials: 'none', emulator: emulator(), pluginOptions: METADATA, brokerEnv: { ALIBABA_CLOUD_CREDENTIALS_FILE: f } }, async (env) => {
      await assertServes(env, 'dev-chain-ini-001');
      await waitForLog(env, /platform credentials chain: using ECS metadata service .*; skipped: .*credentials file: .* is accessible by group or others \(mode 644\); chmod 600 it/);
      assert.ok(!env.broker.log().includes('FILE-SECRET-VALUE'), 'the file\'s secret was logged');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ram_role_arn profile: policy, external_id, role_session_name and role_session_expiration reach STS AssumeRole', async () => {
  const policy = JSON.stringify({ Version: '1', Statement: [{ Effect: 'Allow', Action: ['iot:RegisterDevice', 'iot:QueryDeviceDetail'], Resource: '*' }] });
  await h.withEnv({ emulator: emulator({ externalId: 'bootstrap-ext-7' }), pluginOptions: STS,
    credentials: { type: 'ram_role_arn', access_key_id: '$KEY_ID', access_key_secret: '$KEY_SECRET', role_arn: ROLE_ARN,
      role_session_name: 'broker-7', policy, external_id: 'bootstrap-ext-7', role_session_expiration: 900 } }, async (env) => {
    await assertServes(env, 'dev-chain-arn-001');
    assert.deepStrictEqual(env.emu.credentialStats().lastSts.AssumeRole,
      { RoleArn: ROLE_ARN, RoleSessionName: 'broker-7', DurationSeconds: '900', Policy: policy, ExternalId: 'bootstrap-ext-7' });
  });
});

test('role_session_expiration below STS\'s 900 s minimum: the named credentials file is refused at start', async () => {
  const env = await h.startEnv({ expectFailure: true, pluginOptions: STS,
    credentials: { type: 'ram_role_arn', access_key_id: '$KEY_ID', access_key_secret: '$KEY_SECRET', role_arn: ROLE_ARN, role_session_expiration: 600 } });
  try {
    assert.ok(env.failure, 'the broker exited');
    assert.match(env.broker.log(), /plugin_opt_credentials_file: profile \[default\]: role_session_expiration must be 900 to 43200 seconds/);
  } finally {
    await env.stop();
  }
});

test('ALIBABA_CLOUD_STS_REGION must be a region id: anything else would name another host', async () => {
  const env = await h.startEnv({ expectFailure: true, brokerEnv: { ALIBABA_CLOUD_STS_REGION: 'evil.example/x#' } });
  try {
    assert.ok(env.failure, 'the broker exited');
    assert.match(env.broker.log(), /ALIBABA_CLOUD_STS_REGION: 'evil\.example\/x#' is not a region id/);
  } finally {
    await env.stop();
  }
});

test('OIDC (RRSA): the token file is read again at every exchange; after a rotation STS receives the new token', async () => {
  const dir = h.makeWorkdir();
  const jwt = (sub) => 'eyJhbGciOiJSUzI1NiJ9.' + Buffer.from(JSON.stringify({ sub, iss: 'https://oidc.test', n: Math.random() })).toString('base64url') + '.c2ln';
  const first = jwt('system:serviceaccount:iot:broker');
  const second = jwt('system:serviceaccount:iot:broker');
  try {
    const tokenFile = privateFile(dir, 'token', first + '\n', 0o644);
    // 12 s credentials: renewed 4 s before they expire
    await h.withEnv({ credentials: 'none', emulator: emulator({ oidcToken: first, ttlS: 12 }), pluginOptions: STS,
      brokerEnv: { ALIBABA_CLOUD_ROLE_ARN: ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN: OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE: tokenFile } }, async (env) => {
      await assertServes(env, 'dev-chain-rot-001');
      let c = env.emu.credentialStats();
      assert.strictEqual(c.lastSts.AssumeRoleWithOIDC.OIDCTokenSha256, env.emu.oidcTokenSha256(first));
      const before = c.calls.AssumeRoleWithOIDC;
      // Kubernetes' rotation, as a plain file: the new token written beside it and renamed over it
      const tmp = path.join(dir, '.token.new');
      fs.writeFileSync(tmp, second + '\n', { mode: 0o644 });
      h.giveToBroker(tmp);
      fs.renameSync(tmp, tokenFile);
      env.emu.setOidcToken(second); // STS takes only the new one from now on
      const deadline = Date.now() + 20000;
      while (env.emu.credentialStats().calls.AssumeRoleWithOIDC === before && Date.now() < deadline) await h.sleep(100);
      c = env.emu.credentialStats();
      assert.ok(c.calls.AssumeRoleWithOIDC > before, 'the credentials were renewed');
      assert.strictEqual(c.lastSts.AssumeRoleWithOIDC.OIDCTokenSha256, env.emu.oidcTokenSha256(second), 'the renewal sent the rotated token');
      assert.strictEqual(c.oidcTokenRefused, 0, 'the old token was never sent after the rotation');
      await assertServes(env, 'dev-chain-rot-002');
      for (const t of [first, second]) assert.ok(!env.broker.log().includes(t), 'an OIDC token was logged');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- credentials go only where the operator said ----

test('ALIBABA_CLOUD_CREDENTIALS_URI over plain http to a host that is not this machine: the broker refuses to start', async () => {
  // the AccessKey in the environment would work: the URI is refused all the same, not skipped
  const env = await h.startEnv({ expectFailure: true, brokerEnv: { ALIBABA_CLOUD_CREDENTIALS_URI: 'http://192.0.2.1:8080/creds' } });
  try {
    assert.ok(env.failure, 'the broker exited');
    assert.notStrictEqual(env.failure.code, 0);
    assert.match(env.broker.log(), /mosquitto_bootstrap: ALIBABA_CLOUD_CREDENTIALS_URI: http:\/\/ is only allowed for loopback hosts and the ECS metadata service \(100\.100\.100\.200\); use https:\/\/ for '192\.0\.2\.1'/);
    env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('a credentials URI with user info is refused, and its password is not echoed', async () => {
  const env = await h.startEnv({ expectFailure: true, brokerEnv: { ALIBABA_CLOUD_CREDENTIALS_URI: 'https://broker:URI-PASSWORD-VALUE@creds.example/c' } });
  try {
    assert.ok(env.failure, 'the broker exited');
    assert.match(env.broker.log(), /ALIBABA_CLOUD_CREDENTIALS_URI: must not carry user info/);
    assert.ok(!env.broker.log().includes('URI-PASSWORD-VALUE'), 'the URI\'s password was logged');
  } finally {
    await env.stop();
  }
});

test('the same rule for the option endpoints: http to the metadata address as a prefix of another host is refused', async () => {
  const env = await h.startEnv({ expectFailure: true, pluginOptions: { ecs_metadata_endpoint: 'http://100.100.100.200.evil.example' } });
  try {
    assert.ok(env.failure, 'the broker exited');
    assert.match(env.broker.log(), /plugin_opt_ecs_metadata_endpoint: http:\/\/ is only allowed for loopback hosts/);
  } finally {
    await env.stop();
  }
});
