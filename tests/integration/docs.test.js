'use strict';
// The documentation cannot rot: every shell command of README.md and docs/*.md (the ```sh
// blocks) is run here, run by the test its marker names, or marked not-run with its reason;
// the runnable ones run as a user would type them, in one shell, from a checkout in a
// temporary directory (the README's quick start first, then the pages that use its broker);
// the vectors are recomputed; the links lead somewhere; the ACK manifest agrees with what the
// plugin reads. Counted and printed, never skipped in silence.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const docs = require('./lib/docs');

const ROOT = docs.ROOT;
const sh = () => docs.allBlocks().filter((b) => b.lang === 'sh');
const where = (b) => `${b.page}:${b.line}`;

test('every shell block is run here, run by another test, or marked not-run with a reason', () => {
  const blocks = sh();
  const runHere = blocks.filter((b) => !b.marker);
  const runBy = blocks.filter((b) => b.marker && b.marker.kind === 'run-by');
  const notRun = blocks.filter((b) => b.marker && b.marker.kind === 'not-run');
  console.log(`# ${blocks.length} shell blocks: ${runHere.length} run here, ${runBy.length} run by other tests, ${notRun.length} not run`);
  for (const b of runHere) console.log(`#   run here:   ${where(b)}`);
  for (const b of runBy) console.log(`#   run by ${b.marker.test} (${b.marker.id}): ${where(b)}`);
  for (const b of notRun) console.log(`#   NOT RUN:    ${where(b)}: ${b.marker.reason}`);
  for (const b of notRun) assert.ok(b.marker.reason.length >= 10, `${where(b)}: a not-run block says why`);
  // a block run by another test: that test takes it by its id
  for (const b of runBy) {
    const file = path.join(__dirname, `${b.marker.test.replace(/^integration_/, '')}.test.js`);
    assert.ok(fs.existsSync(file), `${where(b)}: no test ${b.marker.test}`);
    assert.ok(fs.readFileSync(file, 'utf8').includes(`runBy('${b.marker.test}', '${b.marker.id}')`), `${where(b)}: ${b.marker.test} does not run block ${b.marker.id}`);
  }
  assert.ok(runHere.some((b) => b.page === 'README.md'), 'the README\'s quick start is run here');
  // an unmarked block in another language that looks like commands would escape all of this
  for (const b of docs.allBlocks().filter((x) => x.lang === '')) {
    assert.doesNotMatch(b.text, /^\s*(sudo |apt |apt-get |systemctl |mosquitto_(pub|sub|rr) |cmake |dpkg )/m, `${where(b)}: commands in a block not marked sh`);
  }
});

test('the README is short and starts with the two set-up commands', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  // short: the two commands, what it is, the quick start, and the device library's example
  // and sizes (which its issue asks the README to show); the rest is in docs/
  assert.ok(readme.split('\n').length < 175, 'README.md under 175 lines');
  const first = docs.blocks('README.md')[0];
  assert.strictEqual(first.text, './scripts/demo    # as root on Debian: installs what it needs, builds, runs a live demo\n'
    + './scripts/test    # as root on Debian: installs what it needs, builds with ASan+UBSan, runs every test\n');
});

// GitHub's anchors: lower case, punctuation but '-' and '_' dropped, spaces to '-'
function anchors(text) {
  const out = new Set();
  const prose = text.replace(/^\s*```[\s\S]*?^\s*```\s*$/gm, ''); // a '#' in a code block is no heading
  for (const m of prose.matchAll(/^#{1,6} +(.*)$/gm)) {
    out.add(m[1].trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return out;
}

test('every relative link leads to a file, and to a heading of it', () => {
  let n = 0;
  for (const page of docs.pages()) {
    const text = fs.readFileSync(path.join(ROOT, page), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      const [file, anchor] = target.split('#');
      const abs = file ? path.join(ROOT, path.dirname(page), file) : path.join(ROOT, page);
      assert.ok(fs.existsSync(abs), `${page}: link to ${target}: no such file`);
      if (anchor) assert.ok(anchors(fs.readFileSync(abs, 'utf8')).has(anchor), `${page}: link to ${target}: no such heading`);
      n++;
    }
  }
  console.log(`# ${n} relative links checked`);
  assert.ok(n >= 20);
});

test('the vectors of docs/contract.md, recomputed with Node\'s crypto', () => {
  const contract = fs.readFileSync(path.join(ROOT, 'docs/contract.md'), 'utf8');
  // sign vectors
  const rows = [...contract.matchAll(/^\| `(hmacsha256|hmacsha1|hmacmd5)` \| `([0-9a-f]+)` \|$/gm)];
  assert.strictEqual(rows.length, 3, 'a sign vector for each signMethod');
  const signed = /the string signed is `(deviceName[^`]+)`/.exec(contract)[1];
  assert.strictEqual(signed, 'deviceNamedev-0001productKeya1ProdrandomAbCd1234');
  for (const [, method, hex] of rows) {
    const algo = { hmacsha256: 'sha256', hmacsha1: 'sha1', hmacmd5: 'md5' }[method];
    assert.strictEqual(crypto.createHmac(algo, 'prodSecret').update(signed).digest('hex'), hex, method);
  }
  // the IoT Platform password
  const pw = /`(clientId12345deviceNamedeviceproductKeypktimestamp789)` and the password\s+`([0-9A-F]{40})`/.exec(contract);
  assert.ok(pw, 'the password vector');
  assert.strictEqual(crypto.createHmac('sha1', 'secret').update(pw[1]).digest('hex').toUpperCase(), pw[2]);
  // the sealed reply: key, tag, start of the ciphertext
  const key = /→ K = `([0-9a-f]{32})`/.exec(contract)[1];
  const info = Buffer.concat([Buffer.from('mosquitto-bootstrap/v1/reply'), Buffer.from([0]), Buffer.from('a1BwAGV0001'), Buffer.from([0]), Buffer.from('dev-0001')]);
  const k = Buffer.from(crypto.hkdfSync('sha256', Buffer.from('ps-secret-123'), Buffer.from('0e60924368ebe2f2'), info, 16));
  assert.strictEqual(k.toString('hex'), key, 'K');
  const plaintext = /plaintext\s+`(\{"ProductKey":"a1BwAGV0001"[^`]+)`/.exec(contract)[1];
  const c = crypto.createCipheriv('aes-128-gcm', k, Buffer.from('000102030405060708090a0b', 'hex'));
  const ct = Buffer.concat([c.update(plaintext), c.final()]).toString('hex');
  assert.strictEqual(c.getAuthTag().toString('hex'), /the tag is `([0-9a-f]{32})`/.exec(contract)[1], 'tag');
  assert.ok(ct.startsWith(/the ciphertext starts `([0-9a-f]+)`/.exec(contract)[1]), 'ciphertext');
  // and the unit tests check the plugin's (and the device example's) code against the same values
  const unit = (f) => fs.readFileSync(path.join(ROOT, f), 'utf8');
  for (const [, , hex] of rows) assert.ok(unit('tests/unit/test_auth.c').includes(hex), `${hex} in tests/unit/test_auth.c`);
  assert.ok(unit('examples/device/test_aliyun_mqtt.c').includes(pw[2]), 'the password vector in test_aliyun_mqtt.c');
  for (const v of [key, /the tag is `([0-9a-f]{32})`/.exec(contract)[1]]) assert.ok(unit('tests/unit/test_seal.c').includes(v), `${v} in tests/unit/test_seal.c`);
});

test('the ACK manifest of docs/deployment.md agrees with what the plugin reads', () => {
  const page = fs.readFileSync(path.join(ROOT, 'docs/deployment.md'), 'utf8');
  const manifest = docs.blocks('docs/deployment.md').find((b) => b.lang === 'yaml' && /kind: Deployment/.test(b.text));
  const dockerfile = docs.blocks('docs/deployment.md').find((b) => b.lang === 'dockerfile');
  assert.ok(manifest && dockerfile && page.includes('oidc'), 'the manifest and the image');
  const y = manifest.text;
  // the plugin's sources, wherever the refactor puts the credentials chain
  const sources = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name))
    : e.name.endsWith('.c') ? [fs.readFileSync(path.join(dir, e.name), 'utf8')] : []));
  const credentialsC = sources(path.join(ROOT, 'plugin')).join('\n');
  const envNames = [...y.matchAll(/\{name: (ALIBABA_CLOUD_[A-Z_]+), value: ([^}]+)\}/g)].map((m) => [m[1], m[2].trim().replace(/^"|"$/g, '')]);
  assert.deepStrictEqual(envNames.map((e) => e[0]).sort(), ['ALIBABA_CLOUD_OIDC_PROVIDER_ARN', 'ALIBABA_CLOUD_OIDC_TOKEN_FILE', 'ALIBABA_CLOUD_ROLE_ARN']);
  for (const [name] of envNames) assert.ok(credentialsC.includes(`"${name}"`), `the plugin reads ${name}`);
  const mount = (name) => new RegExp(`\\{name: ${name}, mountPath: ([^,]+),`).exec(y)[1];
  const tokenFile = envNames.find((e) => e[0] === 'ALIBABA_CLOUD_OIDC_TOKEN_FILE')[1];
  const tokenPath = /serviceAccountToken: \{path: ([^,]+), audience: sts\.aliyuncs\.com/.exec(y)[1];
  assert.strictEqual(tokenFile, `${mount('rrsa-token')}/${tokenPath}`, 'the token file is the projected token');
  const secretKey = /stringData:\n\s+([a-z-]+):/.exec(y)[1];
  assert.match(y, new RegExp(`plugin_opt_product_secret_file ${mount('product-secret')}/${secretKey}\\n`), 'the ProductSecret file is the Secret\'s');
  assert.match(dockerfile.text, new RegExp(`"-c", "${mount('config')}/mosquitto.conf"`), 'the image runs the ConfigMap\'s mosquitto.conf');
  const multiarch = /plugin (\/usr\/lib\/[^/]+\/mosquitto-bootstrap\/mosquitto_bootstrap\.so)/.exec(y)[1];
  assert.match(multiarch, /^\/usr\/lib\/x86_64-linux-gnu\//, 'the .deb\'s plugin path, for the amd64 image');
  assert.match(y, /fsGroup: 1883/);
  assert.match(dockerfile.text, /groupadd -r -g 1883 mosquitto/);
});

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => { try { resolve(JSON.parse(d)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}

// What a test may print of a command's output: no DeviceSecret, no platform password.
function masked(text) {
  return text.replace(/("DeviceSecret":")[^"]*/g, '$1(masked)').replace(/(password\s+)\S+/g, '$1(masked)');
}

test('the runnable commands, as a user types them: the quick start gives a served device against the emulator', async () => {
  assert.strictEqual(process.getuid(), 0, 'the quick start runs as root (its broker switches to the mosquitto user)');
  for (const port of [1883, 1884, 8080, 8883]) assert.ok(!(await accepts(port)), `port ${port} is taken: the quick start needs it`);
  const runHere = sh().filter((b) => !b.marker);
  // a checkout in a temporary directory: the repository's files, no build tree
  const checkout = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-docs-'));
  for (const e of fs.readdirSync(ROOT)) {
    if (!/^(build|\.git$)/.test(e)) fs.symlinkSync(path.join(ROOT, e), path.join(checkout, e));
  }
  // one shell for every block, as one terminal: the README first, then the pages
  const script = runHere.map((b) => `echo "### ${where(b)}"\n${b.text}`).join('') + 'echo "### D=$D"\n';
  fs.writeFileSync(path.join(checkout, 'docs-commands.sh'), script);
  // the ECS metadata service is never asked (the commands give an AccessKey; this makes sure)
  const env = { ...process.env, ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' };
  const shell = spawn('bash', ['-e', '-o', 'pipefail', 'docs-commands.sh'], { cwd: checkout, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  shell.stdout.on('data', (d) => { out += d; });
  shell.stderr.on('data', (d) => { out += d; });
  const code = await new Promise((resolve) => {
    const timer = setTimeout(() => process.kill(-shell.pid, 'SIGKILL'), 600000);
    shell.on('close', (c) => { clearTimeout(timer); resolve(c); });
  });
  let D = null;
  try {
    assert.strictEqual(code, 0, 'a documented command failed:\n' + masked(out).split('\n').slice(-40).join('\n'));
    D = /^### D=(\/\S+)$/m.exec(out)[1];
    for (const b of runHere) assert.ok(out.includes(`### ${where(b)}\n`), `${where(b)} ran`);
    // the quick start: dev-0001's triple, stored 0600, is the one the emulator registered (and
    // those of the pages' devices: dev-0002 by hand, dev-0003 by the device program again)
    const served = ['dev-0001', 'dev-0002', 'dev-0003'];
    for (const id of served) {
      const file = path.join(D, `${id}.triple`);
      assert.ok(fs.existsSync(file), `${file}: the triple of ${id}`);
      const triple = JSON.parse(fs.readFileSync(file, 'utf8'));
      const device = await getJson(`http://127.0.0.1:8080/_emulator/device?productKey=a1BootstrapDemo&name=${id}`);
      assert.strictEqual(triple.ProductKey, 'a1BootstrapDemo');
      assert.strictEqual(triple.DeviceName, id);
      assert.ok(device && device.DeviceSecret && triple.DeviceSecret === device.DeviceSecret, `${id}: the DeviceSecret the platform emulator holds`);
    }
    assert.strictEqual(fs.statSync(path.join(D, 'dev-0001.triple')).mode & 0o777, 0o600);
    // docs/link-sdk.md: mosquitto_sub as the Link SDK, over TLS, got dev-0004's DeviceSecret
    const dynreg = fs.readFileSync(path.join(D, 'dev-0004.dynreg'), 'utf8').trim();
    const answer = JSON.parse(dynreg);
    const dev4 = await getJson('http://127.0.0.1:8080/_emulator/device?productKey=a1BootstrapDemo&name=dev-0004');
    assert.deepStrictEqual(Object.keys(answer), ['productKey', 'deviceName', 'deviceSecret']);
    assert.ok(answer.deviceName === 'dev-0004' && dev4 && answer.deviceSecret === dev4.DeviceSecret, 'the Link SDK answer is the platform\'s record');
    assert.ok(!out.includes(answer.deviceSecret), 'the dynreg answer went to its file, not the output');
    // the device program printed no secret of the triples it stored (the commands' output)
    for (const id of ['dev-0001', 'dev-0003']) {
      assert.ok(!out.includes(JSON.parse(fs.readFileSync(path.join(D, `${id}.triple`), 'utf8')).DeviceSecret), `${id}: no DeviceSecret in the output`);
    }
    assert.ok(/^ {2}password {2}[0-9A-F]{4}\u2026$/m.test(out), 'the password printed masked'); // never out itself
    const brokerLog = fs.readFileSync(path.join(D, 'broker.log'), 'utf8');
    assert.match(brokerLog, /mosquitto_bootstrap: device dev-0001: triple sent sealed \(new device, product a1BootstrapDemo/);
    assert.match(brokerLog, /mosquitto_bootstrap: device dev-0004: triple sent on \/ext\/register \(Link SDK dynamic registration over TLS; new device/);
    // docs/operating.md: the operator reads the metrics after the restart
    const metrics = fs.readFileSync(path.join(D, 'metrics.txt'), 'utf8').trim().split('\n');
    assert.strictEqual(metrics.length, 2, 'two metric topics');
    for (const l of metrics) assert.match(l, /^\$SYS\/broker\/bootstrap\/\S+ /);
    assert.match(brokerLog, /mosquitto_bootstrap: .*operator/, 'the restarted broker names its operator');
    const check = /mosquitto_bootstrap: platform check: [^\n]*/.exec(brokerLog);
    console.log(`# the quick start's broker: ${check ? check[0] : 'no platform check logged'}`);
    console.log(`# ${runHere.length} blocks ran; ${served.length} devices served by the quick start's broker; ${metrics.length} metric topics read by its operator`);
  } finally {
    // everything the commands started in the background: the emulator, the broker
    try { process.kill(-shell.pid, 'SIGTERM'); } catch (e) { /* all gone already */ }
    for (let i = 0; i < 100 && (await accepts(1883) || await accepts(8080)); i++) await new Promise((r) => setTimeout(r, 50));
    if (D) fs.rmSync(D, { recursive: true, force: true });
    fs.rmSync(checkout, { recursive: true, force: true });
  }
});
