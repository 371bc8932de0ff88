'use strict';
// Batch stage lengths as the real platform's (issue 24): durations in seconds with a jitter
// fraction, measured from outside through QueryBatchRegisterDeviceStatus, and ApplyIds that
// outlive the plugin that asked for them (they live in the emulator, as on the platform).
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const http = require('http');
const path = require('path');
const { spawn } = require('child_process');
const { createEmulator, sign, canonicalQuery } = require('./emulator.js');

const ID = 'LTAIstage';
const SECRET = 'stage-secret-' + crypto.randomBytes(6).toString('hex');

function post(port, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: p, headers, agent: false }, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => resolve({ status: res.statusCode, json: d ? JSON.parse(d) : null }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A batch action signed with signature 1.0 in a POST form body, on a connection of its own
// (agent: false), with a fresh nonce: what a client that has just started sends.
function call(port, action, extra = {}) {
  const q = { Action: action, Format: 'JSON', Version: '2018-01-20', AccessKeyId: ID, SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0', SignatureNonce: crypto.randomUUID(), Timestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    RegionId: 'cn-shanghai', ...(action === 'QueryPageByApplyId' ? {} : { ProductKey: 'a1P' }), ...extra };
  q.Signature = sign('POST', q, SECRET);
  return post(port, '/', canonicalQuery(q) + '&Signature=' + encodeURIComponent(q.Signature), { 'Content-Type': 'application/x-www-form-urlencoded' });
}

const nameList = (list) => Object.fromEntries(list.map((n, i) => [`DeviceNameList.${i + 1}.DeviceName`, n]));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function check(port, names) {
  const r = await call(port, 'BatchCheckDeviceNames', nameList(names));
  assert.strictEqual(r.json.Success, true, JSON.stringify(r.json));
  return r.json.Data.ApplyId;
}

async function status(port, applyId) {
  const r = await call(port, 'QueryBatchRegisterDeviceStatus', { ApplyId: String(applyId) });
  assert.strictEqual(r.json.Success, true, JSON.stringify(r.json));
  return r.json.Data.Status;
}

// Polls the status every 25 ms until it leaves `stage`; the time it was seen in it, in ms.
async function timeIn(port, applyId, stage, since) {
  for (;;) {
    const s = await status(port, applyId);
    if (s !== stage) return { status: s, ms: Date.now() - since };
    if (Date.now() - since > 10000) throw new Error(`${stage} lasted over 10 s`);
    await sleep(25);
  }
}

test('stages of 2 s (check) and 3 s (create) with 20 % jitter last 1.6-2.4 s and 2.4-3.6 s, seen through QueryBatchRegisterDeviceStatus', async () => {
  const emu = createEmulator({ accessKeys: { [ID]: { secret: SECRET } }, products: ['a1P'] });
  const port = await emu.listen(0);
  try {
    emu.setBatch({ stageCheckS: 2, stageCreateS: 3, stageJitter: 0.2 });
    assert.deepStrictEqual([emu.batchConfig().checkDurationMs, emu.batchConfig().createDurationMs, emu.batchConfig().stageJitter], [2000, 3000, 0.2]);
    // four applies side by side: four draws of each stage
    const slack = 150; // a poll every 25 ms, a loaded machine's event loop
    await Promise.all([0, 1, 2, 3].map(async (k) => {
      const t0 = Date.now();
      const id = await check(port, [`st-${k}-a`, `st-${k}-b`]);
      const c = await timeIn(port, id, 'CHECK', t0);
      assert.strictEqual(c.status, 'CHECK_SUCCESS');
      assert.ok(c.ms >= 1600 - 10 && c.ms <= 2400 + slack, `check lasted ${c.ms} ms, outside 2 s ± 20 %`);
      const t1 = Date.now();
      const r = await call(port, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(id) });
      assert.strictEqual(r.json.Success, true, JSON.stringify(r.json));
      const m = await timeIn(port, id, 'CREATE', t1);
      assert.strictEqual(m.status, 'CREATE_SUCCESS');
      assert.ok(m.ms >= 2400 - 10 && m.ms <= 3600 + slack, `create lasted ${m.ms} ms, outside 3 s ± 20 %`);
      // the drawn lengths, as the emulator records them, agree with what was seen
      const a = emu.batchApply(id);
      assert.ok(a.checkMs >= 1600 && a.checkMs <= 2400, `drawn check ${a.checkMs}`);
      assert.ok(a.createMs >= 2400 && a.createMs <= 3600, `drawn create ${a.createMs}`);
      assert.ok(Math.abs((a.checkEndedAt - a.checkStartedAt) - a.checkMs) < 100, 'check ended when drawn');
      assert.ok(Math.abs((a.createEndedAt - a.createStartedAt) - a.createMs) < 100, 'create ended when drawn');
    }));
  } finally {
    await emu.close();
  }
});

test('jitter spreads the draws over the whole ± band and never beyond it; jitter 0 is the duration itself', async () => {
  const emu = createEmulator({ accessKeys: { [ID]: { secret: SECRET } }, products: ['a1P'] });
  const port = await emu.listen(0);
  try {
    emu.setBatch({ checkDurationMs: 100000, stageJitter: 0.2 }); // stages that do not end during the test
    const drawn = [];
    for (let i = 0; i < 200; i++) drawn.push(emu.batchApply(await check(port, [`jit-${i}`])).checkMs);
    assert.ok(drawn.every((x) => x >= 80000 && x <= 120000), `a draw outside 100 s ± 20 %: ${Math.min(...drawn)}..${Math.max(...drawn)}`);
    // 200 uniform draws all inside the middle half of the band: probability 2^-200
    assert.ok(Math.min(...drawn) < 90000 && Math.max(...drawn) > 110000, `draws not spread: ${Math.min(...drawn)}..${Math.max(...drawn)}`);
    emu.setBatch({ stageJitter: 0 });
    assert.strictEqual(emu.batchApply(await check(port, ['jit-zero'])).checkMs, 100000);
    // out of range: kept as it was
    emu.setBatch({ stageJitter: 5 });
    assert.strictEqual(emu.batchConfig().stageJitter, 0);
  } finally {
    await emu.close();
  }
});

test('an ApplyId outlives its client: a new client (new connection, new nonces) queries and continues it; reset keeps it, forgetApplies drops it', async () => {
  const emu = createEmulator({ accessKeys: { [ID]: { secret: SECRET } }, products: ['a1P'], checkDurationMs: 50, createDurationMs: 50 });
  const port = await emu.listen(0);
  try {
    const id = await check(port, ['survive-1', 'survive-2']);
    // the plugin restarts: its connections and state are gone; the emulator's control reset
    // (stats, faults) between the two does not touch the applies
    await post(port, '/_emulator/reset', '');
    await sleep(150);
    assert.strictEqual(await status(port, id), 'CHECK_SUCCESS');
    let r = await call(port, 'BatchRegisterDeviceWithApplyId', { ApplyId: String(id) });
    assert.strictEqual(r.json.Success, true);
    await sleep(150);
    assert.strictEqual(await status(port, id), 'CREATE_SUCCESS');
    r = await call(port, 'QueryPageByApplyId', { ApplyId: String(id), PageSize: '50', CurrentPage: '1' });
    assert.deepStrictEqual(r.json.ApplyDeviceList.ApplyDeviceInfo.map((d) => d.DeviceName).sort(), ['survive-1', 'survive-2']);
    // a platform restart (forgetApplies) is what loses it
    emu.setBatch({ forgetApplies: true });
    r = await call(port, 'QueryBatchRegisterDeviceStatus', { ApplyId: String(id) });
    assert.strictEqual(r.json.Code, 'iot.device.DeviceApplyIsNotFound');
  } finally {
    await emu.close();
  }
});

test('the command line takes --stage-check-s, --stage-create-s, --stage-jitter and refuses a jitter out of range', async () => {
  const run = (args) => new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(__dirname, 'emulator.js'), '--port', '0', ...args],
      { env: { ...process.env, EMULATOR_ACCESS_KEY_ID: ID, EMULATOR_ACCESS_KEY_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /"port":(\d+)/.exec(out);
      if (!m) return;
      http.get({ host: '127.0.0.1', port: Number(m[1]), path: '/_emulator/batch', agent: false }, (res) => {
        let b = '';
        res.on('data', (x) => { b += x; });
        res.on('end', () => { p.kill('SIGTERM'); resolve({ config: JSON.parse(b) }); });
      });
    });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => resolve({ code, err }));
  });
  const ok = await run(['--stage-check-s', '60', '--stage-create-s', '120', '--stage-jitter', '0.2']);
  assert.deepStrictEqual([ok.config.checkDurationMs, ok.config.createDurationMs, ok.config.stageJitter], [60000, 120000, 0.2]);
  const def = await run([]);
  assert.deepStrictEqual([def.config.checkDurationMs, def.config.createDurationMs, def.config.stageJitter], [500, 1000, 0]);
  const bad = await run(['--stage-jitter', '2']);
  assert.strictEqual(bad.code, 2);
  assert.match(bad.err, /--stage-jitter 2/);
});
