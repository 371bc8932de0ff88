'use strict';
// cpack's .deb: it declares the runtime dependencies, puts the plugin in a directory of its own
// under /usr/lib/<multiarch>/, lintian finds no error or warning in it, and the plugin unpacked
// into a temporary root loads and bootstraps a device, the packaged example device among them
// (mosquitto-bootstrap-device, its secrets masked). Then the package's life on this machine,
// without systemd: installed, set up, removed and purged with dpkg by the commands of
// docs/install.md and docs/operating.md, the system broker starting after each step.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const docs = require('./lib/docs');
const net = require('net');
const crypto = require('crypto');
const { spawn } = require('child_process');
const { createEmulator } = require('../emulator/emulator.js');

const BUILD = process.env.BOOTSTRAP_BUILD_DIR;
// the example device, where the package installs it
const DEVICE_BIN = '/usr/bin/mosquitto-bootstrap-device';

test('the .deb installs into a temporary root, and the broker loads the plugin from there', async () => {
  assert.ok(BUILD && fs.existsSync(path.join(BUILD, 'CPackConfig.cmake')), 'BOOTSTRAP_BUILD_DIR must be the build directory');
  const out = h.makeWorkdir();
  try {
    const c = await h.run('cpack', ['-G', 'DEB', '--config', path.join(BUILD, 'CPackConfig.cmake'), '-B', out], { timeoutMs: 120000 });
    assert.strictEqual(c.code, 0, c.stdout + c.stderr);
    const deb = fs.readdirSync(out).find((f) => f.endsWith('.deb') && !f.endsWith('.ddeb'));
    assert.ok(deb, 'a .deb was made');
    const debPath = path.join(out, deb);

    const depends = (await h.run('dpkg-deb', ['-f', debPath, 'Depends'])).stdout;
    for (const dep of [/mosquitto \(>= 2\.0\.11\)/, /libcurl4/, /libjansson4/, /libssl3?/, /libcbor0/]) assert.match(depends, dep);

    const multiarch = (await h.run('gcc', ['-print-multiarch'])).stdout.trim();
    const root = path.join(out, 'root');
    assert.strictEqual((await h.run('dpkg-deb', ['-x', debPath, root])).code, 0);
    const so = path.join(root, 'usr/lib', multiarch, 'mosquitto-bootstrap/mosquitto_bootstrap.so');
    assert.ok(fs.existsSync(so), `plugin at /usr/lib/${multiarch}/mosquitto-bootstrap/ (Debian Policy 10.2: plugins in a directory of their own)`);
    const docs = 'usr/share/doc/mosquitto-bootstrap';
    for (const doc of ['README.md', 'docs/install.md', 'docs/contract.md', 'copyright', 'changelog.gz', 'examples/mosquitto.conf.example', 'examples/mosquitto-bootstrap.conf']) {
      assert.ok(fs.existsSync(path.join(root, docs, doc)), doc);
    }
    for (const cmd of ['mosquitto-bootstrap-open', 'mosquitto-bootstrap-device']) {
      assert.ok(fs.existsSync(path.join(root, `usr/share/man/man1/${cmd}.1.gz`)), `${cmd}'s manual page`);
    }
    // the systemd drop-in is not named like the broker configuration users write in conf.d
    assert.ok(!fs.existsSync(path.join(root, docs, 'bootstrap.conf')) && !fs.existsSync(path.join(root, docs, 'examples/bootstrap.conf')));
    const copyright = fs.readFileSync(path.join(root, docs, 'copyright'), 'utf8');
    assert.match(copyright, /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/$/m);
    assert.match(copyright, /^License: Apache-2\.0$/m);

    // stripped, with the symbols in the -dbgsym package beside it
    const fileOut = (await h.run('file', ['-L', so, path.join(root, 'usr/bin/mosquitto-bootstrap-open'),
      path.join(root, 'usr/bin/mosquitto-bootstrap-device')])).stdout;
    assert.strictEqual((fileOut.match(/ELF/g) || []).length, 3, fileOut);
    assert.doesNotMatch(fileOut, /not stripped/, fileOut);
    assert.ok(fs.readdirSync(out).some((f) => /^mosquitto-bootstrap-dbgsym_.*\.ddeb$/.test(f)), 'a -dbgsym .ddeb');

    // the logrotate snippet is a conffile, and logrotate reads it without an error
    const logrotate = path.join(root, 'etc/logrotate.d/mosquitto-bootstrap');
    assert.ok(fs.existsSync(logrotate), '/etc/logrotate.d/mosquitto-bootstrap');
    const control = path.join(out, 'control');
    assert.strictEqual((await h.run('dpkg-deb', ['-e', debPath, control])).code, 0);
    assert.deepStrictEqual(fs.readFileSync(path.join(control, 'conffiles'), 'utf8').split('\n').filter(Boolean),
      ['/etc/logrotate.d/mosquitto-bootstrap', '/etc/mosquitto/bootstrap.conf']);
    // the broker configuration: inactive (not in conf.d), loud about taking the broker over,
    // naming the plugin where the package puts it
    const conf = fs.readFileSync(path.join(root, 'etc/mosquitto/bootstrap.conf'), 'utf8');
    assert.ok(!fs.existsSync(path.join(root, 'etc/mosquitto/conf.d')), 'nothing in conf.d: the package enables nothing');
    assert.match(conf, /TAKES OVER THIS BROKER/);
    assert.match(conf, new RegExp(`^plugin /usr/lib/${multiarch}/mosquitto-bootstrap/mosquitto_bootstrap\\.so$`, 'm'));
    for (const script of ['prerm', 'postrm']) assert.strictEqual(fs.statSync(path.join(control, script)).mode & 0o777, 0o755, script);
    const lr = await h.run('logrotate', ['--debug', '--state', path.join(out, 'logrotate.state'), logrotate]);
    assert.strictEqual(lr.code, 0, 'logrotate refuses the snippet:\n' + lr.stdout + lr.stderr);
    assert.match(lr.stdout + lr.stderr, /\/var\/log\/mosquitto\/bootstrap-audit\.log/);
    assert.doesNotMatch(lr.stdout + lr.stderr, /error:/);

    // lintian: no error and no warning (the info-level tags are listed in docs/install.md)
    const lint = await h.run('lintian', ['--tag-display-limit', '0', '--fail-on', 'error,warning', debPath], { timeoutMs: 240000 });
    const tags = (lint.stdout + lint.stderr).split('\n').filter((l) => /^[EWIPXO]: /.test(l));
    console.log('lintian:\n' + (tags.join('\n') || '(nothing to report)'));
    assert.strictEqual(lint.code, 0, 'lintian failed:\n' + lint.stdout + lint.stderr);
    assert.ok(!tags.some((l) => /^[EW]: /.test(l)), 'lintian errors or warnings:\n' + tags.join('\n'));

    const open = path.join(root, 'usr/bin/mosquitto-bootstrap-open');
    assert.ok(fs.existsSync(open), 'mosquitto-bootstrap-open in /usr/bin');
    await h.withEnv({ plugin: so }, async (env) => {
      const r = await env.rr('dev-pkg-01');
      assert.strictEqual(r.reply.success, true);
      // the packaged tool opens a sealed reply the way a person testing would use it
      const random = 'pkg-random-0001';
      const rr = await h.rr(env.port, { id: 'dev-pkg-02', message: env.request('dev-pkg-02', { random }) });
      const replyFile = path.join(env.dir, 'reply');
      fs.writeFileSync(replyFile, rr.stdout);
      const opened = await h.run('sh', ['-c', `"${open}" -s "${env.productSecretFile}" -k ${env.productKey} -d dev-pkg-02 -r ${random} < "${replyFile}"`]);
      assert.strictEqual(opened.code, 0, opened.stderr);
      h.assertSameSecret(JSON.parse(opened.stdout).DeviceSecret, env.emu.device(env.productKey, 'dev-pkg-02').DeviceSecret, 'opened DeviceSecret');
      const wrong = await h.run('sh', ['-c', `"${open}" -s "${env.productSecretFile}" -k ${env.productKey} -d dev-pkg-02 -r other-random-01 < "${replyFile}"`]);
      assert.strictEqual(wrong.code, 3, 'another request\'s random does not open it');
      assert.strictEqual(wrong.stdout, '');

      // the packaged example device: its --help, and a bootstrap whose output holds no secret
      const device = path.join(root, 'usr/bin/mosquitto-bootstrap-device');
      const help = await h.run(device, ['--help']);
      assert.strictEqual(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: mosquitto-bootstrap-device -k product_key /m);
      const tripleFile = path.join(env.dir, 'dev-pkg-03.triple');
      const boot = await h.run(device, ['-h', '127.0.0.1', '-p', String(env.port), '-k', env.productKey, '-s', env.productSecretFile,
        '-d', 'dev-pkg-03', '-o', tripleFile]);
      assert.strictEqual(boot.code, 0, boot.stderr);
      const secret = env.emu.device(env.productKey, 'dev-pkg-03').DeviceSecret;
      h.assertSameSecret(JSON.parse(fs.readFileSync(tripleFile, 'utf8')).DeviceSecret, secret, 'the packaged device\'s DeviceSecret');
      assert.ok(!(boot.stdout + boot.stderr).includes(secret), 'the packaged device prints no DeviceSecret');
      // (tested, never printed: the output of a failing masking holds the secrets)
      assert.ok(/^ {2}DeviceSecret +[0-9a-f]{4}\u2026$/m.test(boot.stdout), 'the DeviceSecret printed masked');
      assert.ok(/^ {2}password +[0-9A-F]{4}\u2026$/m.test(boot.stdout), 'the password printed masked');
    });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

// The system broker, as docs/install.md starts it without systemd (its "start" block), its
// output in logFile; resolves once it accepts connections on 1883.
async function startSystemBroker(logFile, env) {
  assert.ok(!(await accepts(1883)), 'something already listens on port 1883: the system broker of this test needs it');
  const block = docs.runBy('integration_package', 'start');
  const out = fs.openSync(logFile, 'a');
  const childEnv = { ...process.env, ...env };
  if (process.env.BOOTSTRAP_PRELOAD) {
    // the ASan build's plugin needs its runtime in the broker, and only there: a mosquitto
    // first in PATH that preloads it (the commands stay as documented)
    const bin = path.join(path.dirname(logFile), 'bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'mosquitto'), `#!/bin/sh\nLD_PRELOAD=${process.env.BOOTSTRAP_PRELOAD} exec /usr/sbin/mosquitto "$@"\n`, { mode: 0o755 });
    childEnv.PATH = bin + ':' + childEnv.PATH;
  }
  const sh = spawn('bash', ['-e', '-c', block.text], { env: childEnv, stdio: ['ignore', out, out] });
  const code = await new Promise((resolve) => sh.on('close', resolve));
  fs.closeSync(out);
  assert.strictEqual(code, 0, 'the start commands failed:\n' + fs.readFileSync(logFile, 'utf8'));
  for (let i = 0; i < 200; i++) {
    if (await accepts(1883)) return;
    await h.sleep(50);
  }
  throw new Error('the system broker did not start:\n' + fs.readFileSync(logFile, 'utf8') + systemLog());
}

async function stopSystemBroker(logFile) {
  const pidFile = '/run/mosquitto/mosquitto.pid';
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  assert.ok(pid > 1, 'the broker wrote its pid file');
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 300 && alive(pid); i++) await h.sleep(50);
  assert.ok(!alive(pid), 'the system broker stopped');
  h.assertNoSanitizerReport(fs.readFileSync(logFile, 'utf8'));
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return false; }
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

const SYSTEM_LOG = '/var/log/mosquitto/mosquitto.log';
let systemLogStart = 0;
function systemLog() {
  try { return fs.readFileSync(SYSTEM_LOG, 'utf8').slice(systemLogStart); } catch (e) { return ''; }
}

async function dpkg(args) {
  return h.run('dpkg', args, { timeoutMs: 120000 });
}

async function installed() {
  const r = await h.run('dpkg-query', ['-W', '-f', '${Status}', 'mosquitto-bootstrap']);
  return r.code === 0 && /install ok installed/.test(r.stdout);
}

test('install, set up, remove and purge with dpkg, no systemd: the system broker starts after each step', async () => {
  assert.ok(BUILD && fs.existsSync(path.join(BUILD, 'CPackConfig.cmake')), 'BOOTSTRAP_BUILD_DIR must be the build directory');
  assert.strictEqual(process.getuid(), 0, 'dpkg needs root: run the tests as root (scripts/test does)');
  const link = '/etc/mosquitto/conf.d/bootstrap.conf';
  const mine = [link, '/etc/mosquitto/bootstrap.env', '/etc/mosquitto/bootstrap-product-secret', '/etc/mosquitto/conf.d/zz-hand-written.conf'];
  // never overwrite an administrator's set-up
  assert.ok(!(await installed()), 'mosquitto-bootstrap is installed on this machine: this test installs and purges it; purge it first');
  for (const f of mine) assert.ok(!fs.existsSync(f) && !isLink(f), `${f} exists: this test would overwrite it`);
  systemLogStart = fs.existsSync(SYSTEM_LOG) ? fs.statSync(SYSTEM_LOG).size : 0;
  const firstLogByte = systemLogStart;

  const out = h.makeWorkdir();
  const productKey = 'a1BootstrapDemo'; // the example's, which bootstrap.conf keeps
  const accessKeyId = 'LTAI' + crypto.randomBytes(8).toString('hex');
  const accessKeySecret = 'aksecret-' + crypto.randomBytes(12).toString('hex');
  const productSecret = 'prodsecret-' + crypto.randomBytes(12).toString('hex');
  const emu = createEmulator({ accessKeys: { [accessKeyId]: { secret: accessKeySecret } }, products: [productKey] });
  const logFile = (step) => path.join(out, `broker-${step}.log`);
  let running = null;
  try {
    const emuPort = await emu.listen(0);
    const c = await h.run('cpack', ['-G', 'DEB', '--config', path.join(BUILD, 'CPackConfig.cmake'), '-B', out], { timeoutMs: 120000 });
    assert.strictEqual(c.code, 0, c.stdout + c.stderr);
    const deb = path.join(out, fs.readdirSync(out).find((f) => f.endsWith('.deb')));

    // 1. installed: nothing enabled, the broker starts as before
    const inst = await dpkg(['-i', deb]);
    assert.strictEqual(inst.code, 0, inst.stdout + inst.stderr);
    assert.ok(fs.existsSync('/etc/mosquitto/bootstrap.conf') && !isLink(link), 'bootstrap.conf installed, not enabled');
    const help = await h.run(DEVICE_BIN, ['--help']);
    assert.strictEqual(help.code, 0, `${DEVICE_BIN} --help: ${help.stderr}`);
    assert.match(help.stdout, /^Usage: mosquitto-bootstrap-device /m);
    running = logFile('installed');
    await startSystemBroker(running, {});
    await stopSystemBroker(running);
    running = null;
    assert.doesNotMatch(systemLog(), /mosquitto_bootstrap/, 'the plugin is not loaded by installing the package');

    // 2. set up as docs/install.md says: the secret, the credentials, the editor (here: the
    // emulator's endpoint, and the ECS metadata service kept on a closed loopback port), the link
    const editor = path.join(out, 'editor');
    fs.writeFileSync(editor, `#!/bin/sh\nsed -i -e 's|^#plugin_opt_endpoint .*|plugin_opt_endpoint http://127.0.0.1:${emuPort}/|' -e '$a plugin_opt_ecs_metadata_endpoint http://127.0.0.1:9' "$1"\n`, { mode: 0o755 });
    const configure = docs.runBy('integration_package', 'configure');
    const setUp = await new Promise((resolve) => {
      const sh = spawn('bash', ['-e', '-c', configure.text], {
        env: { ...process.env, PRODUCT_SECRET: productSecret, KEY_ID: accessKeyId, KEY_SECRET: accessKeySecret, EDITOR: editor },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let o = '';
      sh.stdout.on('data', (d) => { o += d; });
      sh.stderr.on('data', (d) => { o += d; });
      sh.on('close', (code) => resolve({ code, o }));
    });
    assert.strictEqual(setUp.code, 0, 'the set-up commands of docs/install.md failed:\n' + setUp.o);
    assert.strictEqual(fs.statSync('/etc/mosquitto/bootstrap.env').mode & 0o777, 0o600);
    assert.strictEqual(fs.readlinkSync(link), '../bootstrap.conf');
    running = logFile('configured');
    await startSystemBroker(running, { ALIBABA_CLOUD_ECS_METADATA_DISABLED: 'true' });
    const deadline = Date.now() + 15000;
    while (!/mosquitto_bootstrap: platform check: /.test(systemLog()) && Date.now() < deadline) await h.sleep(100);
    assert.match(systemLog(), /mosquitto_bootstrap: platform check: the platform accepts these credentials/, 'bootstrap.env was loaded');
    const req = h.signRequest('dev-pkg-10', productKey, productSecret);
    const r = await h.rr(1883, { id: 'dev-pkg-10', message: JSON.stringify(req) });
    assert.strictEqual(r.reply && r.reply.success, true, r.stdout + r.stderr);
    const triple = h.openSealed(r.reply, { productSecret, random: req.random, productKey, deviceId: 'dev-pkg-10' });
    h.assertSameSecret(triple.DeviceSecret, emu.device(productKey, 'dev-pkg-10').DeviceSecret, 'DeviceSecret from the system broker');
    // docs/install.md's first device: the installed example device, with the installed secret
    // file, against the system broker (in out, where its triple file goes)
    const first = docs.runBy('integration_package', 'device');
    const device = await h.run('bash', ['-e', '-c', `cd "${out}"\nPRODUCT_KEY=${productKey}\n${first.text}`], { timeoutMs: 60000 });
    assert.strictEqual(device.code, 0, device.stderr);
    assert.strictEqual(fs.statSync(path.join(out, 'dev-0001.triple')).mode & 0o777, 0o600);
    const deviceSecret = JSON.parse(fs.readFileSync(path.join(out, 'dev-0001.triple'), 'utf8')).DeviceSecret;
    h.assertSameSecret(deviceSecret, emu.device(productKey, 'dev-0001').DeviceSecret, 'DeviceSecret of the installed example device');
    assert.ok(/^ {2}password {2}[0-9A-F]{4}\u2026$/m.test(device.stdout), 'the password printed masked');
    await stopSystemBroker(running);
    running = null;

    // 3. a plugin line of the administrator's own: the removal stops and says where it is
    fs.writeFileSync(mine[3], `plugin /usr/lib/${(await h.run('gcc', ['-print-multiarch'])).stdout.trim()}/mosquitto-bootstrap/mosquitto_bootstrap.so\n`);
    const refused = await dpkg(['-r', 'mosquitto-bootstrap']);
    assert.notStrictEqual(refused.code, 0, 'dpkg -r must stop while a plugin line names the plugin');
    assert.match(refused.stdout + refused.stderr, /mosquitto-bootstrap: not removed: a plugin line in \/etc\/mosquitto\/conf\.d\/zz-hand-written\.conf/);
    assert.ok(await installed(), 'still installed');
    assert.strictEqual(fs.readlinkSync(link), '../bootstrap.conf', 'the link is left while the removal stops');
    fs.rmSync(mine[3]);

    // 4. removed (docs/operating.md): the link goes with it, the broker starts without the plugin
    const remove = docs.runBy('integration_package', 'remove');
    const rm = await h.run('bash', ['-e', '-c', remove.text], { timeoutMs: 120000 });
    assert.strictEqual(rm.code, 0, rm.stdout + rm.stderr);
    assert.match(rm.stdout + rm.stderr, /disabled the plugin \(removed \/etc\/mosquitto\/conf\.d\/bootstrap\.conf\)/);
    assert.ok(!isLink(link) && !fs.existsSync(link), 'the enabling link is gone');
    assert.ok(fs.existsSync('/etc/mosquitto/bootstrap.conf'), 'the conffile stays until purge');
    assert.ok(!fs.existsSync(DEVICE_BIN) && !fs.existsSync('/usr/share/man/man1/mosquitto-bootstrap-device.1.gz'),
      'the example device and its manual page are removed with the package');
    systemLogStart = fs.existsSync(SYSTEM_LOG) ? fs.statSync(SYSTEM_LOG).size : 0;
    running = logFile('removed');
    await startSystemBroker(running, {});
    await stopSystemBroker(running);
    running = null;
    assert.doesNotMatch(systemLog() + fs.readFileSync(logFile('removed'), 'utf8'), /Unable to load|mosquitto_bootstrap/);

    // 5. purged: its configuration is gone, the files the administrator made are named, the broker starts
    const purge = docs.runBy('integration_package', 'purge');
    const pg = await h.run('bash', ['-e', '-c', purge.text], { timeoutMs: 120000 });
    assert.strictEqual(pg.code, 0, pg.stdout + pg.stderr);
    assert.ok(!fs.existsSync('/etc/mosquitto/bootstrap.conf') && !fs.existsSync('/etc/logrotate.d/mosquitto-bootstrap'), 'conffiles purged');
    assert.match(pg.stdout + pg.stderr, /left in place, yours to delete: \/etc\/mosquitto\/bootstrap\.env/);
    assert.match(pg.stdout + pg.stderr, /left in place, yours to delete: \/etc\/mosquitto\/bootstrap-product-secret/);
    running = logFile('purged');
    await startSystemBroker(running, {});
    await stopSystemBroker(running);
    running = null;
    // every secret this test used stays out of every output
    systemLogStart = firstLogByte;
    const outputs = ['installed', 'configured', 'removed', 'purged'].map((s) => fs.readFileSync(logFile(s), 'utf8')).join('') + systemLog()
      + setUp.o + refused.stdout + refused.stderr + rm.stdout + rm.stderr + pg.stdout + pg.stderr + device.stdout + device.stderr;
    for (const s of [accessKeySecret, productSecret, triple.DeviceSecret, deviceSecret]) assert.ok(!outputs.includes(s), 'a secret in the output');
  } finally {
    if (running) {
      try { await stopSystemBroker(running); } catch (e) { /* reported by the assertion that failed */ }
    }
    fs.rmSync(mine[3], { force: true });
    if ((await h.run('dpkg-query', ['-W', 'mosquitto-bootstrap'])).code === 0) await dpkg(['-P', 'mosquitto-bootstrap']);
    for (const f of mine) fs.rmSync(f, { force: true });
    await emu.close();
    fs.rmSync(out, { recursive: true, force: true });
  }
});

function isLink(f) {
  try { return fs.lstatSync(f).isSymbolicLink(); } catch (e) { return false; }
}
