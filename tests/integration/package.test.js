'use strict';
// cpack's .deb: it declares the runtime dependencies, puts the plugin in a directory of its own
// under /usr/lib/<multiarch>/, lintian finds no error in it, and the plugin unpacked into a
// temporary root loads and bootstraps a device.
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
    const deb = fs.readdirSync(out).find((f) => f.endsWith('.deb') && !f.endsWith('.ddeb'));
    assert.ok(deb, 'a .deb was made');
    const debPath = path.join(out, deb);

    const depends = (await h.run('dpkg-deb', ['-f', debPath, 'Depends'])).stdout;
    for (const dep of [/mosquitto \(>= 2\.0\.11\)/, /libcurl4/, /libjansson4/, /libssl3?/]) assert.match(depends, dep);

    const multiarch = (await h.run('gcc', ['-print-multiarch'])).stdout.trim();
    const root = path.join(out, 'root');
    assert.strictEqual((await h.run('dpkg-deb', ['-x', debPath, root])).code, 0);
    const so = path.join(root, 'usr/lib', multiarch, 'mosquitto-bootstrap/mosquitto_bootstrap.so');
    assert.ok(fs.existsSync(so), `plugin at /usr/lib/${multiarch}/mosquitto-bootstrap/ (Debian Policy 10.2: plugins in a directory of their own)`);
    const docs = 'usr/share/doc/mosquitto-bootstrap';
    for (const doc of ['README.md', 'copyright', 'changelog.gz', 'examples/mosquitto.conf.example', 'examples/mosquitto-bootstrap.conf']) {
      assert.ok(fs.existsSync(path.join(root, docs, doc)), doc);
    }
    assert.ok(fs.existsSync(path.join(root, 'usr/share/man/man1/mosquitto-bootstrap-open.1.gz')), 'manual page');
    // the systemd drop-in is not named like the broker configuration users write in conf.d
    assert.ok(!fs.existsSync(path.join(root, docs, 'bootstrap.conf')) && !fs.existsSync(path.join(root, docs, 'examples/bootstrap.conf')));
    const copyright = fs.readFileSync(path.join(root, docs, 'copyright'), 'utf8');
    assert.match(copyright, /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/$/m);
    assert.match(copyright, /^License: Apache-2\.0$/m);

    // stripped, with the symbols in the -dbgsym package beside it
    const fileOut = (await h.run('file', ['-L', so, path.join(root, 'usr/bin/mosquitto-bootstrap-open')])).stdout;
    assert.doesNotMatch(fileOut, /not stripped/, fileOut);
    assert.ok(fs.readdirSync(out).some((f) => /^mosquitto-bootstrap-dbgsym_.*\.ddeb$/.test(f)), 'a -dbgsym .ddeb');

    // the logrotate snippet is a conffile, and logrotate reads it without an error
    const logrotate = path.join(root, 'etc/logrotate.d/mosquitto-bootstrap');
    assert.ok(fs.existsSync(logrotate), '/etc/logrotate.d/mosquitto-bootstrap');
    const control = path.join(out, 'control');
    assert.strictEqual((await h.run('dpkg-deb', ['-e', debPath, control])).code, 0);
    assert.deepStrictEqual(fs.readFileSync(path.join(control, 'conffiles'), 'utf8').split('\n').filter(Boolean), ['/etc/logrotate.d/mosquitto-bootstrap']);
    const lr = await h.run('logrotate', ['--debug', '--state', path.join(out, 'logrotate.state'), logrotate]);
    assert.strictEqual(lr.code, 0, 'logrotate refuses the snippet:\n' + lr.stdout + lr.stderr);
    assert.match(lr.stdout + lr.stderr, /\/var\/log\/mosquitto\/bootstrap-audit\.log/);
    assert.doesNotMatch(lr.stdout + lr.stderr, /error:/);

    // lintian: no error (warnings are listed in the README's packaging section)
    const lint = await h.run('lintian', ['--tag-display-limit', '0', '--fail-on', 'error', debPath], { timeoutMs: 240000 });
    const tags = (lint.stdout + lint.stderr).split('\n').filter((l) => /^[EWIPXO]: /.test(l));
    console.log('lintian:\n' + (tags.join('\n') || '(nothing to report)'));
    assert.strictEqual(lint.code, 0, 'lintian failed:\n' + lint.stdout + lint.stderr);
    assert.ok(!tags.some((l) => l.startsWith('E: ')), 'lintian errors:\n' + tags.join('\n'));

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
