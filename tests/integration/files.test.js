'use strict';
// Files as Kubernetes, systemd and Docker lay them out (issue 18, item 7), read by a real broker:
// the RRSA token projected behind ..data symlinks and rotated; a ProductSecret, a products file
// and an allowlist from Secret and ConfigMap volumes (fsGroup: 0440 root:<the broker's group>);
// a systemd credential; a Docker secret; and what is refused behind a symlink, at once.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const h = require('./lib/harness');

const ROLE_ARN = 'acs:ram::1234567890123456:role/bootstrap';
const OIDC_PROVIDER_ARN = 'acs:ram::1234567890123456:oidc-provider/ack-rrsa-test';
const PRODUCT_A = 'a1K8sProdA';
const PRODUCT_B = 'a1K8sProdB';

// The user the broker reads files as: 'mosquitto' when the tests run as root (the broker drops
// root for it), else the tests' own user.
function brokerIds() {
  if (process.getuid() !== 0) return { uid: process.getuid(), gid: process.getgid() };
  return { uid: Number(execFileSync('id', ['-u', 'mosquitto']).toString()), gid: Number(execFileSync('id', ['-g', 'mosquitto']).toString()) };
}

// A Kubernetes atomic-writer volume (Secret, ConfigMap, projected) in dir: the files in
// ..<timestamp>/, ..data a symlink to that directory, each name a symlink to ..data/<name>.
// files: { name: { text, mode, owner: 'root' | 'broker', group: 'root' | 'broker' } }.
class K8sVolume {
  constructor(dir) {
    this.dir = dir;
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    this.current = null;
  }

  // A new ..<ts>/ with files, published by renaming a new ..data_tmp link over ..data (what
  // kubelet does on every update); the previous directory is removed.
  publish(ts, files) {
    const data = path.join(this.dir, ts);
    fs.mkdirSync(data, { mode: 0o755 });
    const ids = brokerIds();
    for (const [name, f] of Object.entries(files)) {
      const p = path.join(data, name);
      fs.writeFileSync(p, f.text, { mode: 0o600 });
      if (process.getuid() === 0) fs.chownSync(p, f.owner === 'broker' ? ids.uid : 0, f.group === 'broker' ? ids.gid : 0);
      fs.chmodSync(p, f.mode);
      const link = path.join(this.dir, name);
      if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
    }
    fs.rmSync(path.join(this.dir, '..data_tmp'), { force: true });
    fs.symlinkSync(ts, path.join(this.dir, '..data_tmp'));
    fs.renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (this.current) fs.rmSync(path.join(this.dir, this.current), { recursive: true, force: true });
    this.current = ts;
  }

  path(name) { return path.join(this.dir, name); }
}

function oidcToken(n) {
  return 'eyJhbGciOiJSUzI1NiJ9.' + Buffer.from(JSON.stringify({ sub: 'system:serviceaccount:iot:broker', iss: 'https://oidc.test', n, jti: crypto.randomBytes(8).toString('hex') })).toString('base64url') + '.c2ln';
}

function waitFor(what, check, timeoutMs) {
  return (async () => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await h.sleep(100);
    }
  })();
}

async function reload(env, pattern) {
  const before = env.broker.log().length;
  env.broker.proc.kill('SIGHUP');
  await waitFor(`${pattern} after SIGHUP`, () => pattern.test(env.broker.log().slice(before)), 5000);
  return env.broker.log().slice(before);
}

// A device of product pk asks, signing with secret; its triple must come sealed with secret.
async function bootstrapWith(env, deviceId, pk, secret, { sendProductKey = true } = {}) {
  const random = crypto.randomBytes(12).toString('hex');
  const signed = h.signRequest(deviceId, pk, secret, { random });
  const r = await h.rr(env.port, { id: deviceId, message: JSON.stringify(sendProductKey ? { productKey: pk, ...signed } : signed), timeoutS: 20 });
  assert.ok(r.reply, `${deviceId}: no reply`);
  if (!r.reply.success) return r.reply;
  const triple = h.openSealed(r.reply, { productSecret: secret, random, productKey: pk, deviceId });
  h.assertSameSecret(triple.DeviceSecret, env.emu.device(pk, deviceId).DeviceSecret, `${deviceId} DeviceSecret`);
  return r.reply;
}

test('RRSA on Kubernetes: the projected token (token -> ..data/token, ..data -> ..<ts>/) is exchanged, and after a rotation the new one is', async () => {
  const dir = h.makeWorkdir();
  const token1 = oidcToken(1);
  const token2 = oidcToken(2);
  try {
    // as kubelet projects a service-account token by default: 0644 root:root
    const vol = new K8sVolume(path.join(dir, 'rrsa-tokens'));
    vol.publish('..2026_12_07_10_00_00.123456789', { token: { text: token1, mode: 0o644, owner: 'root', group: 'root' } });
    // credentials that live 15 s: renewed (a new AssumeRoleWithOIDC) 5 s before they expire
    await h.withEnv({ credentials: 'none', emulator: { credentials: { roleArn: ROLE_ARN, oidcProviderArn: OIDC_PROVIDER_ARN, oidcToken: token1, ttlS: 15 } },
      brokerEnv: { ALIBABA_CLOUD_ROLE_ARN: ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN: OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE: vol.path('token') },
      pluginOptions: { sts_endpoint: 'http://127.0.0.1:$EMUPORT/' } }, async (env) => {
      env.secrets.push(token1, token2);
      assert.doesNotMatch(env.broker.log(), /Too many levels of symbolic links/);
      const first = await env.rr('dev-k8s-rrsa-001', { timeoutS: 20 });
      assert.strictEqual(first.reply && first.reply.success, true, `served with the projected token: ${JSON.stringify(first.reply)}\n` +
        env.broker.log().split('\n').filter((l) => l.includes('mosquitto_bootstrap:')).slice(-6).join('\n'));
      const t0 = Date.now();
      let stats = await env.emu.credentialStats();
      assert.ok(stats.calls.AssumeRoleWithOIDC >= 1, 'AssumeRoleWithOIDC with the token');
      assert.strictEqual(stats.oidcTokenRefused, 0);
      const exchanges = stats.calls.AssumeRoleWithOIDC;

      // kubelet rotates the token: a new ..<ts2>/, ..data swapped to it, the old directory gone;
      // from now on STS takes the new token only
      vol.publish('..2026_12_07_10_48_00.987654321', { token: { text: token2, mode: 0o644, owner: 'root', group: 'root' } });
      await env.emu.setOidcToken(token2);
      assert.ok(!fs.existsSync(path.join(vol.dir, '..2026_12_07_10_00_00.123456789')));
      // the next exchange (the renewal) reads the token file again: the new token, accepted
      stats = await waitFor('a renewal after the rotation', async () => {
        const s = await env.emu.credentialStats();
        return (s.calls.AssumeRoleWithOIDC > exchanges || s.oidcTokenRefused > 0) ? s : null;
      }, 30000);
      assert.strictEqual(stats.oidcTokenRefused, 0, 'the renewal sent the rotated token, not the old one');
      assert.ok(stats.calls.AssumeRoleWithOIDC > exchanges);
      // past the first credentials' life: a device is served with the ones the new token got
      const wait = t0 + 16000 - Date.now();
      if (wait > 0) await h.sleep(wait);
      const second = await env.rr('dev-k8s-rrsa-002', { timeoutS: 20 });
      assert.strictEqual(second.reply && second.reply.success, true, JSON.stringify(second.reply));
      assert.strictEqual((await env.emu.credentialStats()).iotRefusedExpired, 0, 'no call with expired credentials');
      assert.ok(!env.broker.log().includes(token1) && !env.broker.log().includes(token2), 'an OIDC token was logged');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Kubernetes Secret volumes (defaultMode 0400 + fsGroup: 0440 root:<the broker\'s group>): the ProductSecret, a products file, a ConfigMap allowlist; updates taken up on SIGHUP', async () => {
  const dir = h.makeWorkdir();
  const secretA = 'K8sSecretA-' + crypto.randomBytes(10).toString('hex');
  const secretB = 'K8sSecretB-' + crypto.randomBytes(10).toString('hex');
  const secretB2 = 'K8sSecretB2-' + crypto.randomBytes(10).toString('hex');
  try {
    const fsGroup = (text) => ({ text, mode: 0o440, owner: 'root', group: 'broker' });
    const single = new K8sVolume(path.join(dir, 'product-secret'));
    single.publish('..2026_12_07_10_00_00.1', { 'product-secret': fsGroup(secretA + '\n') });
    const multi = new K8sVolume(path.join(dir, 'products'));
    const productsText = (b) => `${PRODUCT_A} ${multi.path('a')}\n${PRODUCT_B} ${multi.path('b')}\n`;
    multi.publish('..2026_12_07_10_00_00.2', { products: fsGroup(productsText()), a: fsGroup(secretA + '\n'), b: fsGroup(secretB + '\n') });
    // a ConfigMap: 0644 root:root (the allowlist holds no secret)
    const cm = new K8sVolume(path.join(dir, 'allowlist'));
    cm.publish('..2026_12_07_10_00_00.3', { allowlist: { text: 'dev-k8s-*\n', mode: 0o644, owner: 'root', group: 'root' } });

    // one product: its ProductSecret from the Secret volume
    await h.withEnv({ emulator: { products: [PRODUCT_A] },
      pluginOptions: { product_key: PRODUCT_A, product_secret_file: single.path('product-secret'), device_allowlist: cm.path('allowlist') } }, async (env) => {
      env.secrets.push(secretA);
      assert.strictEqual((await bootstrapWith(env, 'dev-k8s-single-1', PRODUCT_A, secretA, { sendProductKey: false })).success, true);
      // not on the ConfigMap's list
      const refused = await bootstrapWith(env, 'dev-elsewhere-1', PRODUCT_A, secretA, { sendProductKey: false });
      assert.strictEqual(refused.success, false);
      assert.strictEqual(refused.code, 'not_allowed');
    });

    // several products: the products file and both secrets from the Secret volume
    await h.withEnv({ emulator: { products: [PRODUCT_A, PRODUCT_B] },
      pluginOptions: { product_key: null, product_secret_file: null, products_file: multi.path('products'), device_allowlist: cm.path('allowlist') } }, async (env) => {
      env.secrets.push(secretA, secretB, secretB2);
      assert.strictEqual((await bootstrapWith(env, 'dev-k8s-multi-a1', PRODUCT_A, secretA)).success, true);
      assert.strictEqual((await bootstrapWith(env, 'dev-k8s-multi-b1', PRODUCT_B, secretB)).success, true);
      // the Secret is updated (B's ProductSecret rotated) the way kubelet does it, then SIGHUP
      multi.publish('..2026_12_07_11_00_00.4', { products: fsGroup(productsText()), a: fsGroup(secretA + '\n'), b: fsGroup(secretB2 + '\n') });
      cm.publish('..2026_12_07_11_00_00.5', { allowlist: { text: 'dev-k8s-*\ndev-new-*\n', mode: 0o644, owner: 'root', group: 'root' } });
      const said = await reload(env, /reload: (device allowlist|plugin_opt_device_allowlist)/);
      assert.doesNotMatch(said, /keeping the current/);
      assert.match(said, /reload: products file \S+products: 2 products/);
      assert.match(said, /reload: device allowlist \S+allowlist: 0 deviceIds, 2 patterns/);
      assert.strictEqual((await bootstrapWith(env, 'dev-new-b2', PRODUCT_B, secretB2)).success, true, 'the rotated secret and the new list, after SIGHUP');
      assert.strictEqual((await bootstrapWith(env, 'dev-k8s-multi-b3', PRODUCT_B, secretB)).code, 'unauthorized', 'the old secret no longer');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a systemd credential (LoadCredential: directory 0500, file 0400, the broker\'s own) and a Docker secret (0400 with uid:, not the default 0444)', async () => {
  const dir = h.makeWorkdir();
  const secretS = 'SystemdSecret-' + crypto.randomBytes(10).toString('hex');
  const secretD = 'DockerSecret-' + crypto.randomBytes(10).toString('hex');
  const ids = brokerIds();
  try {
    const creds = path.join(dir, 'credentials');
    fs.mkdirSync(creds);
    fs.writeFileSync(path.join(creds, 'product-secret'), secretS + '\n', { mode: 0o400 });
    fs.chownSync(path.join(creds, 'product-secret'), ids.uid, ids.gid);
    fs.chownSync(creds, ids.uid, ids.gid);
    fs.chmodSync(creds, 0o500);
    await h.withEnv({ emulator: { products: [PRODUCT_A] }, brokerEnv: { CREDENTIALS_DIRECTORY: creds },
      pluginOptions: { product_key: PRODUCT_A, product_secret_file: path.join(creds, 'product-secret') } }, async (env) => {
      env.secrets.push(secretS);
      assert.strictEqual((await bootstrapWith(env, 'dev-systemd-1', PRODUCT_A, secretS, { sendProductKey: false })).success, true);
    });

    // /run/secrets/<name>: Docker's default is 0444 root:root, readable by every process in the
    // container: refused for a ProductSecret, saying how to fix it, and not echoed
    const run = path.join(dir, 'run-secrets');
    fs.mkdirSync(run, { mode: 0o755 });
    const docker = path.join(run, 'product_secret');
    fs.writeFileSync(docker, secretD + '\n', { mode: 0o444 });
    if (process.getuid() === 0) fs.chownSync(docker, 0, 0);
    fs.chmodSync(docker, 0o444);
    const env0 = await h.startEnv({ emulator: { products: [PRODUCT_A] }, pluginOptions: { product_key: PRODUCT_A, product_secret_file: docker }, expectFailure: true });
    try {
      assert.ok(env0.failure, 'the broker refused to start');
      assert.match(env0.broker.log(), /plugin_opt_product_secret_file: \S+product_secret is accessible by group or others \(mode 444\); chmod 600 it/);
      assert.ok(!env0.broker.log().includes(secretD), 'the secret was logged');
    } finally { await env0.stop(); }
    // the service's secrets: entry with mode: 0400 and uid: <the broker's>
    fs.chownSync(docker, ids.uid, ids.gid);
    fs.chmodSync(docker, 0o400);
    await h.withEnv({ emulator: { products: [PRODUCT_A] }, pluginOptions: { product_key: PRODUCT_A, product_secret_file: docker } }, async (env) => {
      env.secrets.push(secretD);
      assert.strictEqual((await bootstrapWith(env, 'dev-docker-1', PRODUCT_A, secretD, { sendProductKey: false })).success, true);
    });
  } finally {
    fs.chmodSync(path.join(dir, 'credentials'), 0o700);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('behind a symlink, refused at once with what it points to: a FIFO, a directory, /dev/zero, nothing, a loop, an oversize file; and on SIGHUP a FIFO swapped in does not stall the broker', async () => {
  const dir = h.makeWorkdir();
  try {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', ['-m', '0600', fifo]);
    fs.mkdirSync(path.join(dir, 'adir'));
    fs.writeFileSync(path.join(dir, 'big'), 'x'.repeat(64 * 1024 + 1), { mode: 0o600 });
    h.giveToBroker(path.join(dir, 'big'));
    fs.symlinkSync('loop-b', path.join(dir, 'loop-a'));
    fs.symlinkSync('loop-a', path.join(dir, 'loop-b'));
    // what the broker says after "plugin_opt_product_secret_file: "
    const cases = [
      [fifo, /\S+ \(a symlink to \S+\/fifo\) is not a regular file \(a FIFO\)/],
      [path.join(dir, 'adir'), /\S+ \(a symlink to \S+\/adir\) is not a regular file \(a directory\)/],
      ['/dev/zero', /\S+ \(a symlink to \/dev\/zero\) is not a regular file \(a character device\)/],
      [path.join(dir, 'nowhere'), /cannot open \S+ \(a symlink to \S+\/nowhere\): it points to nothing \(a dangling symlink\)/],
      [null, /cannot open \S+\/loop-a \(a symlink to loop-b\): Too many levels of symbolic links \(a symlink loop\)/],
      [path.join(dir, 'big'), /\S+ \(a symlink to \S+\/big\) is larger than 65536 bytes/],
    ];
    for (const [target, why] of cases) {
      let link = path.join(dir, 'loop-a');
      if (target) {
        link = path.join(dir, 'link-' + crypto.randomBytes(3).toString('hex'));
        fs.symlinkSync(target, link);
      }
      const t = Date.now();
      const env = await h.startEnv({ pluginOptions: { product_secret_file: link }, expectFailure: true });
      try {
        assert.ok(env.failure, `${target}: the broker refused to start`);
        assert.match(env.broker.log(), new RegExp('mosquitto_bootstrap: plugin_opt_product_secret_file: ' + why.source));
        assert.ok(Date.now() - t < 8000, `${target}: refused at once, not after a wait`);
      } finally { await env.stop(); }
    }

    // a running broker: the Secret volume's ..data swapped to a directory where the secret is a
    // FIFO; SIGHUP keeps the current secret, and the broker answers at once
    const secret = 'FifoSwapSecret-' + crypto.randomBytes(10).toString('hex');
    const vol = new K8sVolume(path.join(dir, 'vol'));
    vol.publish('..2026_12_07_10_00_00.1', { 'product-secret': { text: secret + '\n', mode: 0o440, owner: 'root', group: 'broker' } });
    await h.withEnv({ emulator: { products: [PRODUCT_A] }, pluginOptions: { product_key: PRODUCT_A, product_secret_file: vol.path('product-secret') } }, async (env) => {
      env.secrets.push(secret);
      const evil = path.join(vol.dir, '..evil');
      fs.mkdirSync(evil);
      execFileSync('mkfifo', ['-m', '0600', path.join(evil, 'product-secret')]);
      fs.symlinkSync('..evil', path.join(vol.dir, '..data_tmp'));
      fs.renameSync(path.join(vol.dir, '..data_tmp'), path.join(vol.dir, '..data'));
      const said = await reload(env, /reload: .*keeping the current ProductSecret/);
      assert.match(said, /plugin_opt_product_secret_file: \S+product-secret \(a symlink to \.\.data\/product-secret\) is not a regular file \(a FIFO\); keeping the current ProductSecret/);
      const t = Date.now();
      assert.strictEqual((await bootstrapWith(env, 'dev-after-fifo', PRODUCT_A, secret, { sendProductKey: false })).success, true);
      assert.ok(Date.now() - t < 10000);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
