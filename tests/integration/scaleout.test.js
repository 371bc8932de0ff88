'use strict';
// Two bootstrap brokers behind HAProxy on loopback, one account (one emulator enforcing the
// 30/50 quota), the quota split between them: every device bootstraps, and the two together
// stay within the quota.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const h = require('./lib/harness');

test('two brokers behind HAProxy share one account: all devices bootstrap, zero throttling', async () => {
  // floor(0.97 x qps + 1.5) per broker and second, with room for unsynchronised arrivals:
  // 14 + 14 of 30, 24 + 24 of 50
  const split = { register_qps: 13, query_qps: 24 };
  const a = await h.startEnv({ emulatorProcess: true, emulator: { quota: { RegisterDevice: 30, QueryDeviceDetail: 50 } }, pluginOptions: { ...split, audit_file: '$DIR/audit.log' } });
  const b = await h.startEnv({ emulatorProcess: true, shareWith: a, pluginOptions: { ...split, audit_file: '$DIR/audit.log' } });
  const dir = h.makeWorkdir();
  let haproxy;
  try {
    const port = await h.freePort();
    const cfg = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(cfg, fs.readFileSync(path.join(__dirname, '../../examples/haproxy/haproxy.cfg'), 'utf8')
      .replace(/^(\s*)bind :1883$/m, `$1bind 127.0.0.1:${port}`)
      .replace(/^(\s*)server broker1 .*$/m, `$1server broker1 127.0.0.1:${a.port}`)
      .replace(/^(\s*)server broker2 .*$/m, `$1server broker2 127.0.0.1:${b.port}`));
    haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    h.live.add(haproxy);
    for (let i = 0; i < 50; i++) { if (await h.connackMs(port).then(() => true, () => false)) break; await h.sleep(100); }

    const ids = Array.from({ length: 150 }, (_, i) => `dev-ha-${String(i).padStart(3, '0')}`);
    const t0 = Date.now();
    const replies = await Promise.all(ids.map((id) => h.rr(port, { id, message: a.request(id), timeoutS: 60 })));
    const elapsed = (Date.now() - t0) / 1000;
    assert.strictEqual(replies.filter((r) => r.reply && r.reply.success).length, 150, 'every device got its triple');
    const stats = await a.emu.stats();
    assert.strictEqual(stats.throttled, 0, 'the two brokers together stayed within the quota');
    assert.strictEqual(stats.byAction.RegisterDevice, 150);
    assert.ok(elapsed >= 149 / 30, `${elapsed} s is faster than the account's quota`);
    // both brokers took a share of the devices
    const served = [a, b].map((e) => h.auditLines(e).filter((l) => l.code === 'ok').length);
    assert.ok(served[0] > 0 && served[1] > 0 && served[0] + served[1] === 150, `served ${served}`);
    await b.assertLogClean();
    await a.assertLogClean();
  } finally {
    if (haproxy) haproxy.kill('SIGTERM');
    await b.stop();
    await a.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
