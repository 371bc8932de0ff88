'use strict';
// Stopping the broker while requests wait on the platform: the worker is joined, everything
// is freed (the sanitizer runtime in the broker reports any leak), and it takes little time.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

test('SIGTERM with 30 requests in flight and 30 queued: clean, prompt exit', async () => {
  const env = await h.startEnv({ pluginOptions: { max_inflight: 30, audit_file: '$DIR/audit.log' } });
  try {
    // the start-up check takes an in-flight slot while it runs: let it finish first
    for (let i = 0; i < 200 && !/platform check: /.test(env.broker.log()); i++) await h.sleep(50);
    env.emu.setLatency(5000);
    const ids = Array.from({ length: 60 }, (_, i) => `dev-sd-${String(i).padStart(3, '0')}`);
    const pending = ids.map((id) => env.rr(id, { timeoutS: 8 }));
    const deadline = Date.now() + 5000;
    while ((env.emu.stats().requests < 30) && Date.now() < deadline) await h.sleep(50);
    assert.strictEqual(env.emu.stats().requests, 30, 'max_inflight requests reached the platform, the rest queued');
    const t0 = Date.now();
    const result = await env.broker.stop(); // fails on any sanitizer report
    const took = Date.now() - t0;
    assert.strictEqual(result.code, 0, 'the broker exited normally');
    assert.ok(took < 2000, `shutdown took ${took} ms`);
    const audited = h.auditLines(env);
    assert.deepStrictEqual([audited.length, audited.filter((l) => l.code === 'shutdown').length], [60, 60], 'every request audited as abandoned at shutdown');
    const replies = await Promise.all(pending);
    assert.strictEqual(replies.filter((r) => r.reply).length, 0, 'nobody got a half-made reply');
    env.assertLogClean();
  } finally {
    await env.stop();
  }
});
