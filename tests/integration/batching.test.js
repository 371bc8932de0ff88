'use strict';
// plugin_opt_batching auto (the default): waiting requests are coalesced into the platform's batch
// actions, under every action's quota, and every device still gets its own triple, whatever the
// batch comes to: names that exist, names registered meanwhile, a stage that never finishes, a
// platform that forgets its ApplyIds, a RAM identity without the batch grants.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const { DOCUMENTED_QPS } = require('../emulator/emulator.js');

const BATCH_ACTIONS = ['BatchQueryDeviceDetail', 'BatchCheckDeviceNames', 'QueryBatchRegisterDeviceStatus',
  'BatchRegisterDeviceWithApplyId', 'QueryPageByApplyId'];
const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

// Every device asks at once and comes back as told; each must end with the emulator's own triple.
async function storm(env, ids) {
  const results = await Promise.all(ids.map((id) => env.device(id, { timeoutS: 60 })));
  for (let i = 0; i < ids.length; i++) {
    const r = results[i];
    assert.ok(r.reply && r.reply.success, `${ids[i]}: ${JSON.stringify(r.codes)}`);
    assert.strictEqual(r.reply.data.DeviceName, ids[i]);
    const d = await env.emu.device(h.PRODUCT_KEY, ids[i]);
    h.assertSameSecret(r.reply.data.DeviceSecret, d.DeviceSecret, `${ids[i]} DeviceSecret`);
    assert.strictEqual(r.reply.data.IotId, d.IotId);
  }
  return results;
}

function auditLines(env) {
  const f = path.join(env.dir, 'audit.log');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

// With register_qps 10, single RegisterDevice calls keep about 50 new names of a backlog (what
// they clear while a batch registration runs): a crowd of 150 or more makes a batch.
const SLOW_SINGLES = { register_qps: 10 };

// Waits (up to tries x everyMs) for an apply whose Status passes want; resolves with it, or null.
async function applyIn(env, want, tries = 200, everyMs = 50) {
  for (let i = 0; i < tries; i++) {
    const found = (await env.emu.batchConfig()).applies.find((a) => want(a.Status));
    if (found) return found;
    await h.sleep(everyMs);
  }
  return null;
}

const batchCalls = (stats) => BATCH_ACTIONS.reduce((n, a) => n + (stats.byAction[a] || 0), 0);

test('a lone device on an idle broker gets single calls, as without batching', async () => {
  await h.withEnv({}, async (env) => {
    const r = await env.rr('lone-0001');
    assert.strictEqual(r.reply.success, true);
    env.emu.preRegister(h.PRODUCT_KEY, 'lone-old-0001');
    const old = await env.rr('lone-old-0001');
    assert.strictEqual(old.reply.success, true);
    const stats = await env.emu.stats();
    assert.strictEqual(batchCalls(stats), 0, JSON.stringify(stats.byAction));
    assert.deepStrictEqual(stats.byAction, { RegisterDevice: 2, QueryDeviceDetail: 1 });
  });
});

test('300 existing devices at once under every quota: BatchQueryDeviceDetail serves them, zero throttling', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS },
    pluginOptions: { audit_file: '$DIR/audit.log' } });
  try {
    const ids = names('bq-old', 300);
    await env.emu.preRegister(h.PRODUCT_KEY, ids);
    // two transient failures on whatever goes first (the first batch): retried, nobody notices
    await env.emu.addFaults({ kind: '5xx', count: 1 }, { kind: 'throttle', count: 1 });
    await storm(env, ids);
    const stats = await env.emu.stats();
    // the default configuration (V3, batching auto) against the strict emulator: sent = signed
    assert.deepStrictEqual([stats.signatureFailures, stats.strict], [0, {}], 'no signature error, nothing the strict checks refused');
    assert.strictEqual(stats.throttled, 1, 'only the injected Throttling');
    assert.ok(stats.batch.devicesServed.BatchQueryDeviceDetail >= 200, JSON.stringify(stats.batch.devicesServed));
    const singles = (stats.byAction.QueryDeviceDetail || 0) + (stats.byAction.RegisterDevice || 0);
    assert.ok(singles <= 100, `${singles} single calls for 300 devices`);
    assert.ok(stats.byAction.BatchQueryDeviceDetail <= 10, `${stats.byAction.BatchQueryDeviceDetail} batch calls`);
    // the audit trail says which call served each device: a batch call's RequestId on many lines
    const lines = auditLines(env).filter((l) => l.code === 'ok');
    assert.strictEqual(lines.length, 300);
    const byBatch = lines.filter((l) => l.action === 'BatchQueryDeviceDetail');
    assert.ok(byBatch.length >= 200, `${byBatch.length} devices audited as served by BatchQueryDeviceDetail`);
    const perCall = {};
    for (const l of byBatch) perCall[l.requestId] = (perCall[l.requestId] || 0) + 1;
    assert.ok(Math.max(...Object.values(perCall)) >= 50, `devices per batch call: ${JSON.stringify(Object.values(perCall))}`);
    assert.ok(lines.every((l) => l.device === 'existing'));
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('400 new devices at once: one batch registration (check, register), its devices told to come back and looked up, zero throttling', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 400, createDurationMs: 400 },
    pluginOptions: { audit_file: '$DIR/audit.log' } });
  try {
    // single RegisterDevice calls keep what they clear while a batch runs (~150): the rest is batched
    const ids = names('br-new', 400);
    await storm(env, ids);
    const stats = await env.emu.stats();
    assert.deepStrictEqual([stats.signatureFailures, stats.strict], [0, {}], 'no signature error, nothing the strict checks refused');
    assert.strictEqual(stats.throttled, 0, JSON.stringify(stats.throttledBy));
    assert.ok(stats.batch.devicesCreated >= 200, `${stats.batch.devicesCreated} devices created by batch`);
    assert.ok((stats.byAction.RegisterDevice || 0) <= 200, `${stats.byAction.RegisterDevice} RegisterDevice calls`);
    assert.strictEqual(stats.batch.registerRefused, 0, 'never registered before the check succeeded');
    const lines = auditLines(env).filter((l) => l.code === 'ok');
    assert.strictEqual(lines.length, 400);
    // no page (no DeviceSecret kept): the batched devices come back and are looked up
    assert.ok(!stats.byAction.QueryPageByApplyId);
    assert.ok(lines.filter((l) => l.action === 'BatchQueryDeviceDetail').length >= 200);
    assert.ok(lines.every((l) => l.device === 'new'));
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('names that exist fail the check and names registered during creation fail it: each device still gets its own triple', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 300, createDurationMs: 1500 },
    pluginOptions: { strategy: 'register_first', ...SLOW_SINGLES } });
  try {
    // 20 of 200 exist already: the first check fails, the rest is checked again on its own
    const ids = names('mix', 200);
    const existing = ids.filter((_, i) => i % 10 === 3);
    await env.emu.preRegister(h.PRODUCT_KEY, existing);
    const running = storm(env, ids);
    // while a batch is being created, five of its names are registered by someone else
    let raced = [];
    const creating = await applyIn(env, (s) => s === 'CREATE');
    if (creating) {
      raced = (await env.emu.batchApply(creating.ApplyId)).DeviceNames.slice(-5);
      await env.emu.preRegister(h.PRODUCT_KEY, raced);
    }
    assert.strictEqual(raced.length, 5, 'a batch reached creation');
    await running; // storm() checked every triple against the emulator's, the raced ones too
    const stats = await env.emu.stats();
    assert.ok(stats.batch.stagesEnded.CHECK_FAILED >= 1, JSON.stringify(stats.batch.stagesEnded));
    assert.ok(stats.batch.stagesEnded.CREATE_FAILED >= 1, JSON.stringify(stats.batch.stagesEnded));
    assert.strictEqual(stats.throttled, 0);
    await env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('a stage that does not finish: its devices are told to come back, never registered singly meanwhile; served once it ends', async () => {
  const env = await h.startEnv(await h.operatorOptions({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, stageStuck: 'check' },
    pluginOptions: { strategy: 'register_first', request_deadline_ms: 8000, ...SLOW_SINGLES } }));
  try {
    const ids = names('stuck', 160);
    const running = storm(env, ids);
    // the apply outlives its devices' requests (a stall fails it only after 10 minutes: the
    // unit test test_apply covers that on a fake clock): they are told to come back, again
    // and again while it is stuck, and no single call is made for their names
    const stuck = await applyIn(env, () => true);
    assert.ok(stuck, 'a batch was started');
    await h.sleep(12000);
    const mid = await env.emu.stats();
    assert.ok(mid.batch.stagesStuck >= 1, 'the batch got stuck');
    await env.emu.setBatch({ stageStuck: false });
    const results = await running;
    for (const r of results) assert.strictEqual(r.codes[r.codes.length - 1], 'ok', JSON.stringify(r.codes));
    const stats = await env.emu.stats();
    const applies = (await env.emu.batchConfig()).applies;
    const batched = applies.reduce((n, a) => n + a.names, 0);
    assert.ok(batched >= 50, `${batched} names batched`);
    assert.strictEqual(stats.byAction.RegisterDevice, 160 - batched, 'no RegisterDevice for a batched name');
    assert.strictEqual(stats.batch.appliesCreated, applies.length);
    await h.waitForSys(env, 'platform/batch_names_told_busy', (v) => Number(v) >= batched * 2, { timeoutMs: 5000 });
  } finally {
    await env.stop();
  }
});

test('the platform forgets its ApplyIds mid-batch (a restart): the devices go on as single calls', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 300, createDurationMs: 3000 },
    pluginOptions: { strategy: 'register_first', ...SLOW_SINGLES } });
  try {
    const ids = names('lost', 200);
    const running = storm(env, ids);
    const forgot = !!(await applyIn(env, (s) => s === 'CREATE'));
    if (forgot) await env.emu.setBatch({ forgetApplies: true });
    assert.ok(forgot, 'a batch reached creation');
    await running;
    const stats = await env.emu.stats();
    assert.ok(stats.byCode['iot.device.DeviceApplyIsNotFound'] >= 1, JSON.stringify(stats.byCode));
    assert.strictEqual(stats.throttled, 0);
  } finally {
    await env.stop();
  }
});

test('existing_devices never: devices our own batch created are served as new when the platform forgets the ApplyId after creating them', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 300, createDurationMs: 1500 },
    pluginOptions: { existing_devices: 'never', ...SLOW_SINGLES } });
  try {
    const ids = names('nev', 200);
    const running = Promise.all(ids.map((id) => env.device(id, { timeoutS: 60, maxTries: 3 })));
    const forgot = !!(await applyIn(env, (s) => s === 'CREATE_SUCCESS' || s === 'CREATE_FAILED', 2000, 10));
    if (forgot) await env.emu.setBatch({ forgetApplies: true });
    assert.ok(forgot, 'a batch finished creating');
    const results = await running;
    const refused = results.filter((r) => !r.reply || !r.reply.success);
    assert.deepStrictEqual(refused.map((r) => r.codes), [], 'every device created for it is served');
    const stats = await env.emu.stats();
    assert.ok(stats.batch.devicesCreated >= 50, JSON.stringify(stats.batch));
  } finally {
    await env.stop();
  }
});

test('a lost answer to BatchRegisterDeviceWithApplyId: the plugin asks how the batch stands instead of registering again; batching stays on', async () => {
  await h.withEnv(await h.operatorOptions({ emulator: { checkDurationMs: 300, createDurationMs: 200 }, pluginOptions: { ...SLOW_SINGLES, http_timeout_ms: 1000 } }), async (env) => {
    // the first register call's answer comes after the plugin has given up waiting for it
    const server = env.emu.server;
    const handler = server.listeners('request')[0];
    server.removeAllListeners('request');
    let delayed = 0;
    server.on('request', (req, res) => {
      if (req.headers['x-acs-action'] === 'BatchRegisterDeviceWithApplyId' && delayed++ === 0) {
        const end = res.end.bind(res);
        res.end = (...a) => setTimeout(() => end(...a), 1500);
      }
      handler(req, res);
    });
    const first = await Promise.all(names('lost-reg', 200).map((id) => env.device(id, { timeoutS: 60, maxTries: 3 })));
    assert.ok(first.every((r) => r.reply && r.reply.success), JSON.stringify(first.filter((r) => !r.reply || !r.reply.success).map((r) => r.codes)));
    const st = env.emu.stats();
    assert.strictEqual(st.byAction.BatchRegisterDeviceWithApplyId, st.batch.appliesCreated, 'each batch registered once');
    assert.strictEqual(st.batch.registerRefused, 0);
    await h.sleep(1200);
    // a counter that never moved is not published
    const regRefused = await Promise.all(['auth', 'refused'].map((o) => h.readSys(env, `platform/BatchRegisterDeviceWithApplyId/${o}`)));
    assert.deepStrictEqual(regRefused, [null, null], 'no refusal of a registration that would turn batching off');
    const before = env.emu.stats().batch.appliesCreated;
    await Promise.all(names('lost-reg2', 200).map((id) => env.device(id, { timeoutS: 60, maxTries: 3 })));
    assert.ok(env.emu.stats().batch.appliesCreated > before, 'the next crowd is batched too');
  });
});

test('a RAM identity without the batch grants: batching stops with one warning, devices are served by single calls', async () => {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS } });
  try {
    await env.emu.setBatch({ deniedActions: BATCH_ACTIONS });
    const old = names('ram-old', 60);
    await env.emu.preRegister(h.PRODUCT_KEY, old);
    await storm(env, [...old, ...names('ram-new', 140)]);
    const stats = await env.emu.stats();
    assert.ok(stats.byAction.BatchQueryDeviceDetail <= 1 && (stats.byAction.BatchCheckDeviceNames || 0) <= 1, JSON.stringify(stats.byAction));
    assert.strictEqual(stats.throttled, 0);
    await h.sleep(1200);
    const warnings = env.broker.log().split('\n').filter((l) => /batching: .*Forbidden\.RAM/.test(l));
    assert.ok(warnings.length >= 1 && warnings.length <= 2, warnings.join('\n'));
  } finally {
    await env.stop();
  }
});

test('signature v1: batch calls signed in the form body are accepted; the metrics count what each action served', async () => {
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { ops: 'ops-password' });
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: DOCUMENTED_QPS, checkDurationMs: 200, createDurationMs: 200 },
    pluginOptions: { signature_version: 'v1', metrics_interval: 1, operator: 'ops', ...SLOW_SINGLES },
    extraConfig: `password_file ${pw}\nallow_anonymous true` });
  try {
    const old = names('v1-old', 100);
    await env.emu.preRegister(h.PRODUCT_KEY, old);
    await storm(env, old);
    await storm(env, names('v1-new', 200));
    const stats = await env.emu.stats();
    assert.strictEqual(stats.signatureFailures, 0);
    assert.ok(stats.bySignature.v1 > 0 && stats.bySignature.v3 === 0);
    assert.ok(stats.batch.devicesServed.BatchQueryDeviceDetail >= 50 && stats.batch.devicesCreated >= 50, JSON.stringify(stats.batch));
    await h.sleep(1500);
    const m = await h.readMetrics(env.port, ['-u', 'ops', '-P', 'ops-password']);
    const OUTCOMES = ['ok', 'exists', 'not_exists', 'auth', 'refused', 'throttled', 'unavailable', 'not_yet'];
    for (const a of ['RegisterDevice', 'QueryDeviceDetail', ...BATCH_ACTIONS]) {
      const answered = OUTCOMES.reduce((n, o) => n + (m[`platform/${a}/${o}`] || 0), 0); // published once it moved
      assert.strictEqual(answered, stats.byAction[a] || 0, `${a}: the plugin counts the calls the emulator answered`);
    }
    // a lookup serves the devices it found and tells the others they are new
    const looked = m['platform/BatchQueryDeviceDetail/devices'];
    assert.ok(looked >= stats.batch.devicesServed.BatchQueryDeviceDetail && looked <= 100 * stats.byAction.BatchQueryDeviceDetail, String(looked));
    assert.ok(!m['platform/QueryPageByApplyId/devices'] && !stats.byAction.QueryPageByApplyId, 'no page: no DeviceSecret kept');
    assert.strictEqual(m['platform/batch_registrations'], stats.batch.appliesCreated);
    assert.strictEqual(m['replies/ok'], 300);
  } finally {
    await env.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('batching off: single calls only', async () => {
  await h.withEnv({ pluginOptions: { batching: 'off' } }, async (env) => {
    await Promise.all(names('off', 40).map((id) => env.rr(id)));
    const stats = await env.emu.stats();
    assert.strictEqual(batchCalls(stats), 0);
    assert.strictEqual(stats.byAction.RegisterDevice, 40);
  });
});
