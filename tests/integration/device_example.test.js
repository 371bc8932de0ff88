'use strict';
// examples/device: a real device program bootstraps through the broker, keeps its triple in a
// 0600 file, and prints the IoT Platform connection parameters derived from it, its secrets
// masked unless --show-secrets (whose output this test never prints); --help and bad arguments.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const DEVICE = process.env.BOOTSTRAP_DEVICE;

// The IoT Platform password of the triple, by the device rules (docs/contract.md), for the
// timestamp the device printed in its client id.
function platformPassword(deviceSecret, clientId, deviceName, productKey, t) {
  return crypto.createHmac('sha1', deviceSecret)
    .update(`clientId${clientId}deviceName${deviceName}productKey${productKey}timestamp${t}`).digest('hex').toUpperCase();
}

// name's value in the program's output ("  name  value"), or undefined
const field = (stdout, name) => (new RegExp(`^\\s+${name}\\s+(.*)$`, 'm').exec(stdout) || [])[1];

test('bootstrap_device gets its triple, stores it 0600 and prints how to connect, secrets masked', async () => {
  assert.ok(DEVICE && fs.existsSync(DEVICE), 'BOOTSTRAP_DEVICE must name the built example');
  await h.withEnv({}, async (env) => {
    const out = path.join(env.dir, 'dev-ex-01.triple');
    const r = await h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(env.port), '-k', h.PRODUCT_KEY, '-s', env.productSecretFile,
      '-d', 'dev-ex-01', '-o', out]);
    assert.strictEqual(r.code, 0, r.stderr);
    const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
    const device = env.emu.device(h.PRODUCT_KEY, 'dev-ex-01');
    h.assertSameSecret(triple.DeviceSecret, device.DeviceSecret, 'stored DeviceSecret');
    assert.strictEqual(fs.statSync(out).mode & 0o777, 0o600);

    assert.strictEqual(field(r.stdout, 'host'), `${h.PRODUCT_KEY}.iot-as-mqtt.cn-shanghai.aliyuncs.com`);
    assert.strictEqual(field(r.stdout, 'username'), `dev-ex-01&${h.PRODUCT_KEY}`);
    assert.strictEqual(field(r.stdout, 'ProductKey'), h.PRODUCT_KEY);
    assert.strictEqual(field(r.stdout, 'DeviceName'), 'dev-ex-01');
    const cid = field(r.stdout, 'clientId');
    const t = /timestamp=(\d+)\|$/.exec(cid)[1];
    assert.strictEqual(cid, `dev-ex-01|securemode=3,signmethod=hmacsha1,timestamp=${t}|`);
    // the password the platform expects, from the triple file and, independently, from the
    // platform's own record of the secret
    const password = platformPassword(triple.DeviceSecret, 'dev-ex-01', 'dev-ex-01', h.PRODUCT_KEY, t);
    assert.ok(password === platformPassword(device.DeviceSecret, 'dev-ex-01', 'dev-ex-01', h.PRODUCT_KEY, t),
      'the triple file gives the password the platform expects');
    // what it printed holds no secret: each only masked, its first 4 characters and an ellipsis
    for (const [what, secret] of [['DeviceSecret', triple.DeviceSecret], ['password', password], ['ProductSecret', env.productSecret]]) {
      assert.ok(secret.length >= 16 && !(r.stdout + r.stderr).includes(secret), `the ${what} is not printed`);
    }
    assert.ok(field(r.stdout, 'DeviceSecret') === `${triple.DeviceSecret.slice(0, 4)}\u2026`, 'the DeviceSecret is shown masked');
    assert.ok(field(r.stdout, 'password') === `${password.slice(0, 4)}\u2026`, 'the password is shown masked');
    assert.ok(/--show-secrets prints them/.test(r.stdout), 'it says how to see them');
    assert.strictEqual(r.stderr, '');
  });
});

test('bootstrap_device --show-secrets prints the DeviceSecret and the password in full, with a warning', async () => {
  await h.withEnv({}, async (env) => {
    const out = path.join(env.dir, 'dev-ex-03.triple');
    const r = await h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(env.port), '-k', h.PRODUCT_KEY, '-s', env.productSecretFile,
      '-d', 'dev-ex-03', '-o', out, '--show-secrets']);
    // its output holds secrets: never in an assertion's message
    assert.ok(r.code === 0, `exit status ${r.code}`);
    const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
    h.assertSameSecret(triple.DeviceSecret, env.emu.device(h.PRODUCT_KEY, 'dev-ex-03').DeviceSecret, 'stored DeviceSecret');
    const t = /timestamp=(\d+)\|$/.exec(field(r.stdout, 'clientId'))[1];
    h.assertSameSecret(field(r.stdout, 'DeviceSecret'), triple.DeviceSecret, 'printed DeviceSecret');
    h.assertSameSecret(field(r.stdout, 'password'), platformPassword(triple.DeviceSecret, 'dev-ex-03', 'dev-ex-03', h.PRODUCT_KEY, t), 'printed password');
    assert.ok(!(r.stdout + r.stderr).includes(env.productSecret), 'the ProductSecret is never printed');
    assert.ok(/--show-secrets: the DeviceSecret and the IoT Platform password are printed in full/.test(r.stderr), 'a warning on stderr');
    assert.ok(!/masked/.test(r.stdout), 'nothing said to be masked');
  });
});

test('bootstrap_device --help, and a usage on bad arguments', async () => {
  const help = await h.run(DEVICE, ['--help']);
  assert.strictEqual(help.code, 0, help.stderr);
  assert.strictEqual(help.stderr, '');
  // every option, what it does, where the triple goes, the exit status
  for (const o of ['-d', '-h', '-k', '-o', '-p', '-r', '-s', '-w', '--help', '--show-secrets']) {
    assert.match(help.stdout, new RegExp(`^ ${o} : `, 'm'), `${o} is described`);
  }
  assert.match(help.stdout, /^Usage: \S*bootstrap_device -k product_key -s product_secret_file -d device_id -o triple_file$/m);
  assert.match(help.stdout, /mode 0600/);
  assert.match(help.stdout, /UNSAFE/);
  assert.match(help.stdout, /^Exit status:\n 0 : [^\n]+\n(.+\n)* 1 : [^\n]+\n(.+\n)* 2 : /m);
  const bad = [
    [['--no-such-option'], /unrecognized option/],
    [['-x'], /invalid option/],
    [['-k', h.PRODUCT_KEY, '-d', 'dev-ex-04'], /-k, -s, -d and -o are required/],
    [['-p', '70000', '-k', h.PRODUCT_KEY], /-p 70000: not a port/],
    [['-w', 'soon'], /-w soon: not a number of seconds/],
    [['-k', h.PRODUCT_KEY, 'stray'], /unexpected argument 'stray'/],
  ];
  for (const [args, why] of bad) {
    const r = await h.run(DEVICE, args);
    assert.strictEqual(r.code, 2, `${args.join(' ')}: exit status 2`);
    assert.match(r.stderr, why);
    assert.match(r.stderr, /^Usage: /m, `${args.join(' ')}: the usage on stderr`);
    assert.strictEqual(r.stdout, '');
  }
});

test('bootstrap_device of either product on a broker that serves two', async () => {
  const products = ['a1DevExAlpha', 'a1DevExBeta'];
  await h.withEnv({ products }, async (env) => {
    for (const pk of products) {
      const secretFile = path.join(env.dir, `device-secret-${pk}`);
      fs.writeFileSync(secretFile, env.productSecrets[pk] + '\n', { mode: 0o600 });
      const out = path.join(env.dir, `${pk}.triple`);
      const r = await h.run(DEVICE, ['-h', '127.0.0.1', '-p', String(env.port), '-k', pk, '-s', secretFile, '-d', 'dev-ex-02', '-o', out]);
      assert.strictEqual(r.code, 0, r.stderr);
      const triple = JSON.parse(fs.readFileSync(out, 'utf8'));
      assert.strictEqual(triple.ProductKey, pk);
      h.assertSameSecret(triple.DeviceSecret, env.emu.device(pk, 'dev-ex-02').DeviceSecret, `${pk} DeviceSecret`);
    }
  });
});
