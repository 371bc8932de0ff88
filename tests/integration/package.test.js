'use strict';
// cpack's .deb: it declares the runtime dependencies, puts the plugin where Debian's Mosquitto
// keeps plugins, and the plugin unpacked into a temporary root loads and bootstraps a device.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const BUILD = process.env.BOOTSTRAP_BUILD_DIR;

test('the .deb installs into a temporary root, and the broker loads the plugin from there', async () => {
  assert.ok(BUILD && fs.existsSync(path.join(BUILD, 'CPackConfig.cmake')), 'BOOTSTRAP_BUILD_DIR must be the build directory');
  const out = h.makeWorkdir();
  try {
    const c = await h.run('cpack', ['-G', 'DEB', '--config', path.join(BUILD, 'CPackConfig.cmake'), '-B', out], { timeoutMs: 120000 });
    assert.strictEqual(c.code, 0, c.stdout + c.stderr);
    const deb = fs.readdirSync(out).find((f) => f.endsWith('.deb'));
    assert.ok(deb, 'a .deb was made');
    const debPath = path.join(out, deb);

    const depends = (await h.run('dpkg-deb', ['-f', debPath, 'Depends'])).stdout;
    for (const dep of [/mosquitto \(>= 2\.0\.11\)/, /libcurl4/, /libjansson4/, /libssl3?/]) assert.match(depends, dep);

    const multiarch = (await h.run('gcc', ['-print-multiarch'])).stdout.trim();
    const root = path.join(out, 'root');
    assert.strictEqual((await h.run('dpkg-deb', ['-x', debPath, root])).code, 0);
    const so = path.join(root, 'usr/lib', multiarch, 'mosquitto_bootstrap.so');
    assert.ok(fs.existsSync(so), `plugin at /usr/lib/${multiarch}/ beside mosquitto_dynamic_security.so`);
    for (const doc of ['mosquitto.conf.example', 'README.md', 'bootstrap.conf']) {
      assert.ok(fs.existsSync(path.join(root, 'usr/share/doc/mosquitto-bootstrap', doc)), doc);
    }

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
    });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
