'use strict';
// Issue 24: a batch registration outlives the requests that started it. With the emulator's
// stages longer than a request's deadline, a crowd of new devices (real mosquitto_rr clients,
// each following retryAfter) is told busy with the batch's expected end, comes back and is
// served by lookups: one BatchCheckDeviceNames, no RegisterDevice for a batched name, no
// QueryPageByApplyId, no Throttling. A device asking before the end is told busy again without
// a platform call; a stage that fails after the devices were told to come back sends them to
// single calls (audit reason batch_failed).
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

// register_qps 10: single calls keep what they clear by the deadline (request_deadline_ms 8 s:
// about 78 names); the rest of a crowd of 200 is batched.
const OPTIONS = { register_qps: 10, request_deadline_ms: 8000, audit_file: '$DIR/audit.log' };
// stages longer than the deadline: 5 s check, 6 s creation
const STAGES = { quota: DOCUMENTED_QPS, checkDurationMs: 5000, createDurationMs: 6000 };

async function checkTriples(env, ids, results) {
  for (let i = 0; i < ids.length; i++) {
    const r = results[i];
    assert.ok(r.reply && r.reply.success, `${ids[i]}: ${JSON.stringify(r.codes)}`);
    const d = await env.emu.device(h.PRODUCT_KEY, ids[i]);
    h.assertSameSecret(r.reply.data.DeviceSecret, d.DeviceSecret, `${ids[i]} DeviceSecret`);
  }
}

// The names the applies took (the first request's audit reason is batch_pending).
function batchedNames(env) {
  return new Set(h.auditLines(env).filter((l) => l.reason === 'batch_pending').map((l) => l.deviceId || l.device_id));
}

// A crowd spawned at once reaches the broker over a second or two: one apply, or two when a
// pause in the arrivals ended the gathering. Never a name in two: the applies' names add up to
// the names told to wait, each check went on to at most one register call.
async function assertApplies(env, stats, batched, registered) {
  const applies = (await env.emu.batchConfig()).applies;
  assert.ok(stats.byAction.BatchCheckDeviceNames >= 1 && stats.byAction.BatchCheckDeviceNames <= 2, JSON.stringify(stats.byAction));
  assert.strictEqual(applies.length, stats.byAction.BatchCheckDeviceNames);
  assert.strictEqual(applies.reduce((n, a) => n + a.names, 0), batched.size, 'each batched name in one apply');
  assert.strictEqual(stats.byAction.BatchRegisterDeviceWithApplyId || 0, registered ? applies.length : 0);
}

test('stages longer than the deadline: told busy with the expected end, served by lookups; a retry before the end costs no call', async () => {
  const env = await h.startEnv(await h.operatorOptions({ emulatorProcess: true, emulator: STAGES, pluginOptions: OPTIONS }));
  try {
    const ids = names('long', 200);
    const t0 = Date.now();
    const running = ids.map((id) => env.device(id, { timeoutS: 30 }));
    // a batched device asks again at once, before the end: busy with the time left
    let early = null;
    for (let i = 0; i < 100 && !early; i++) {
      await h.sleep(100);
      const lines = h.auditLines(env).filter((l) => l.reason === 'batch_pending');
      if (lines.length) early = lines[lines.length - 1];
    }
    assert.ok(early, 'a device was told to wait for its batch');
    const earlyId = early.deviceId || early.device_id;
    const again = await env.rr(earlyId, { timeoutS: 10 });
    assert.strictEqual(again.reply.success, false);
    assert.strictEqual(again.reply.code, 'busy');
    assert.ok(again.reply.retryAfter >= 1, JSON.stringify(again.reply));
    const results = await Promise.all(running);
    const took = (Date.now() - t0) / 1000;
    await checkTriples(env, ids, results);
    const stats = await env.emu.stats();
    const batched = batchedNames(env);
    assert.ok(batched.size >= 50, `${batched.size} names batched`);
    await assertApplies(env, stats, batched, true);
    assert.ok(!stats.byAction.QueryPageByApplyId, 'no page: no DeviceSecret kept');
    assert.strictEqual(stats.byAction.RegisterDevice, ids.length - batched.size, 'no RegisterDevice for a batched name');
    assert.ok((stats.byAction.BatchQueryDeviceDetail || 0) >= 1, 'the batched devices were looked up');
    assert.strictEqual(stats.throttled, 0);
    // every batched device: told busy, came back, got its triple; a few requests at most
    for (let i = 0; i < ids.length; i++) {
      if (!batched.has(ids[i])) continue;
      assert.strictEqual(results[i].codes[0], 'busy', `${ids[i]}: ${results[i].codes}`);
      assert.ok(results[i].tries <= 5, `${ids[i]}: ${results[i].codes}`);
    }
    // the whole crowd in about the stages' time, not the single calls' 20 s
    assert.ok(took < 40, `took ${took} s`);
    const audit = h.auditLines(env);
    // the early asker: busy twice (each audited, neither a platform call), then its lookup
    const mine = audit.filter((l) => (l.deviceId || l.device_id) === earlyId);
    assert.deepStrictEqual(mine.map((l) => l.reason).slice(0, 2), ['batch_pending', 'batch_pending']);
    assert.strictEqual(mine[mine.length - 1].reason, 'registered');
    // a lookup (batched, or alone when it came back alone)
    assert.match(mine[mine.length - 1].action, /QueryDeviceDetail$/);
    assert.ok(mine.slice(0, -1).every((l) => !l.action && !l.request_id && !l.requestId), JSON.stringify(mine));
    // the estimate and its basis in $SYS
    const applies = stats.byAction.BatchCheckDeviceNames;
    await h.waitForSys(env, 'platform/batch_estimate/checks_seen', (v) => Number(v) === applies);
    await h.waitForSys(env, 'platform/batch_estimate/creates_seen', (v) => Number(v) === applies);
    // learnt: about the emulator's 5 s check (seen by a status poll, up to 2 s late), with its spread
    const checkMs = Number(await h.readSys(env, 'platform/batch_estimate/check_ms'));
    assert.ok(checkMs >= 5000 && checkMs <= 9000, `check estimate ${checkMs}`);
    assert.strictEqual(Number(await h.readSys(env, 'platform/batch_names')), batched.size);
    assert.strictEqual(Number(await h.readSys(env, 'platform/batch_names_told_busy')) >= batched.size, true);
  } finally {
    await env.stop();
  }
});

test('a stage that fails after the devices were told to come back: their next request goes to single calls', async () => {
  for (const stage of ['check', 'create']) {
    const env = await h.startEnv({ emulatorProcess: true, emulator: STAGES, pluginOptions: OPTIONS });
    try {
      await env.emu.setBatch({ stageFail: stage });
      const ids = names(`fail-${stage}`, 200);
      const results = await Promise.all(ids.map((id) => env.device(id, { timeoutS: 30 })));
      await checkTriples(env, ids, results);
      const stats = await env.emu.stats();
      const batched = batchedNames(env);
      assert.ok(batched.size >= 50, `${stage}: ${batched.size} names batched`);
      await assertApplies(env, stats, batched, stage === 'create');
      // after creation was asked for, each is looked up first (it may be ours)
      if (stage === 'create') assert.ok((stats.byAction.QueryDeviceDetail || 0) + (stats.byAction.BatchQueryDeviceDetail || 0) >= 1);
      assert.strictEqual(stats.byAction.RegisterDevice, ids.length, `${stage}: every device registered singly`);
      assert.strictEqual(stats.throttled, 0);
      const failed = h.auditLines(env).filter((l) => l.reason === 'batch_failed').map((l) => l.deviceId || l.device_id);
      assert.strictEqual(new Set(failed).size, batched.size, `${stage}: each batched device's triple says batch_failed`);
      for (const id of failed) assert.ok(batched.has(id));
    } finally {
      await env.stop();
    }
  }
});

// A device that keeps asking through a broker restart: no reply (the broker is away) is asked
// again a second later, busy after retryAfter.
async function persistent(env, id) {
  const codes = [];
  for (let tries = 1; ; tries++) {
    const r = await env.rr(id, { timeoutS: 10 });
    const reply = r.reply;
    codes.push(reply ? (reply.success ? 'ok' : reply.code) : 'no_reply');
    if ((reply && (reply.success || !reply.retryAfter)) || tries >= 30) return { reply, tries, codes };
    await h.sleep(reply ? reply.retryAfter * 1000 : 1000);
  }
}

test('the broker restarts mid-batch: the batch is resumed from batch_state_file, not repeated', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: STAGES,
    pluginOptions: { ...OPTIONS, batch_state_file: '$DIR/batch-state.json' } });
  const fs = require('fs');
  const path = require('path');
  const file = path.join(env.dir, 'batch-state.json');
  try {
    const ids = names('restart', 200);
    const running = ids.map((id) => persistent(env, id));
    // the check under way, and written down: then the broker goes and comes back
    let saved = null;
    for (let i = 0; i < 100 && !saved; i++) {
      await h.sleep(100);
      try {
        const s = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (s.applies.length) saved = s;
      } catch (e) { /* not yet */ }
    }
    assert.ok(saved, 'the apply was written down');
    assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600);
    assert.strictEqual(saved.applies[0].state, 'checking');
    assert.ok(!/secret/i.test(fs.readFileSync(file, 'utf8')), 'no secret in the state file');
    const restartedAt = Date.now();
    await env.restartBroker();
    const results = await Promise.all(running);
    await checkTriples(env, ids, results);
    const stats = await env.emu.stats();
    const applies = (await env.emu.batchConfig()).applies;
    const told = batchedNames(env);
    // the names saved were not checked again: each apply once, no RegisterDevice for its names
    assert.strictEqual(stats.byAction.BatchCheckDeviceNames, applies.length, JSON.stringify(stats.byAction));
    assert.strictEqual(stats.byAction.BatchRegisterDeviceWithApplyId, applies.length);
    assert.strictEqual(applies.reduce((n, a) => n + a.names, 0), told.size);
    // single calls: one per unbatched device, and again for the few whose answer the stop cut
    // off (the new broker asks again: AlreadyExists, then its details)
    assert.ok(stats.byAction.RegisterDevice >= ids.length - told.size && stats.byAction.RegisterDevice <= ids.length - told.size + 10,
      `${stats.byAction.RegisterDevice} RegisterDevice for ${ids.length - told.size} unbatched devices`);
    for (const id of told) {
      const last = h.auditLines(env).filter((l) => l.deviceId === id && l.code === 'ok');
      assert.ok(last.length === 1 && /QueryDeviceDetail$/.test(last[0].action), `${id}: ${JSON.stringify(last)}`);
    }
    assert.ok(saved.applies[0].names.length >= 50);
    // after the restart the resumed apply's devices were still told to wait, then looked up
    const after = h.auditLines(env).filter((l) => Date.parse(l.time) >= restartedAt - 1000 && told.has(l.deviceId));
    assert.ok(after.some((l) => l.reason === 'batch_pending'), 'told to wait after the restart');
    assert.ok(after.filter((l) => l.reason === 'registered').every((l) => /QueryDeviceDetail$/.test(l.action)));
    // once the batch is over, the file says so
    const end = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepStrictEqual(end.applies, []);
    assert.ok(end.estimate.checks >= 1);
  } finally {
    await env.stop();
  }
});
