'use strict';
// Hold under abuse (issue 10): memory bounded whatever anonymous clients send, CONNACK unhurt by
// a flood of garbage, bounded answers to a client that never reads, and exactly one audit line
// per request (joins, dropped connections and shutdown included). Raw MQTT where a client
// library refuses to send what an attacker would.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');
const mqtt = require('./lib/mqtt_raw');

const MiB = 1024 * 1024;
// ASan keeps freed memory in quarantine (256 MB by default): a small one, so RSS shows what
// the broker really holds
const ASAN_SMALL_QUARANTINE = { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:quarantine_size_mb=4:thread_local_quarantine_size_kb=64' };

function rssMiB(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
}

function auditLines(env) {
  const f = path.join(env.dir, 'audit.log');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

for (const clean of [true, false]) {
test(`three ${clean ? 'clean' : 'persistent'}-session clients with 60 000-byte client ids pour 10 000 requests each and leave: RSS grows by at most 64 MiB, none gets an answer`, async () => {
  await h.withEnv({ brokerEnv: ASAN_SMALL_QUARANTINE, logTypes: ['error', 'warning', 'notice'], pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    const pid = env.broker.proc.pid;
    // warm up: the broker's and the plugin's first allocations are not the flood's
    assert.strictEqual((await env.rr('dev-warm-1')).reply.success, true);
    const before = rssMiB(pid);
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(pid)); }, 50);
    // persistent sessions stay after their clients leave: nothing of the plugin's may queue in them
    const clients = await Promise.all([0, 1, 2].map((i) => mqtt.connect(env.port, { clientId: String(i).repeat(60000), keepAlive: 0, clean })));
    const payloads = Array.from({ length: 10000 }, () => 'x');
    await Promise.all(clients.map((c) => c.publishMany('bootstrap/register', payloads, { qos: 1 })));
    await h.sleep(1500);
    const received = clients.reduce((n, c) => n + c.received, 0);
    await Promise.all(clients.map((c) => c.disconnect()));
    await h.sleep(2000);
    clearInterval(sampler);
    const after = rssMiB(pid);
    peak = Math.max(peak, after);
    assert.strictEqual(received, 0, 'a client id nobody could be addressed by got answers');
    assert.ok(peak - before <= 64, `RSS grew by ${(peak - before).toFixed(1)} MiB (from ${before.toFixed(1)})`);
    // the broker keeps serving
    assert.strictEqual((await env.rr('dev-after-flood')).reply.success, true);
    // unaddressable client ids are never limited by id: the address's limit was reached, once,
    // and the refusals after it counted in summary lines
    const blocked = h.auditLines(env).filter((l) => l.code === 'rate_limited' && !l.unanswered);
    assert.deepStrictEqual(blocked.map((l) => l.address), ['127.0.0.1'], 'the address limit reached once');
    await h.waitForAudit(env, (l) => l.code === 'rate_limited' && l.unanswered > 0);
  });
});
}

test('a client that pours garbage and never reads gets at most 11 answers; a device beside it is served', async () => {
  await h.withEnv({ brokerEnv: ASAN_SMALL_QUARANTINE, logTypes: ['error', 'warning', 'notice'] }, async (env) => {
    const flooder = await mqtt.connect(env.port, { clientId: 'flooder-1', version: 5, keepAlive: 0, noAck: true });
    await flooder.subscribe('bootstrap/reply/flooder-1', 1);
    await flooder.publishMany('bootstrap/register', Array.from({ length: 5000 }, (_, i) => `{"deviceId":${i}}`), { qos: 1 });
    await h.sleep(1000);
    assert.ok(flooder.received <= 11, `${flooder.received} answers to one client's flood`);
    const codes = flooder.messages.map((m) => JSON.parse(m.payload).code);
    assert.deepStrictEqual(codes.slice(0, 9), Array(9).fill('invalid_request'));
    assert.strictEqual(codes[9], 'rate_limited');
    assert.ok(flooder.messages.every((m) => m.qos === 0), 'error replies are QoS 0: nothing for the broker to keep');
    const device = await env.rr('dev-beside-1');
    assert.strictEqual(device.reply.success, true);
    flooder.destroy();
  });
});

test('one client pouring 20 000 invalid requests does not slow CONNACK for others beyond 200 ms p99', async () => {
  await h.withEnv({ logTypes: ['error', 'warning', 'notice', 'information'] }, async (env) => {
    const pourer = await mqtt.connect(env.port, { clientId: 'pourer-1', keepAlive: 0 });
    const pour = (async () => {
      for (let round = 0; round < 4; round++) {
        await pourer.publishMany('bootstrap/register', Array.from({ length: 5000 }, () => 'bad/id'), { qos: 1, waitAcks: true });
      }
    })();
    const samples = [];
    const deadline = Date.now() + 30000;
    let pouring = true;
    pour.finally(() => { pouring = false; });
    while ((pouring || samples.length < 100) && Date.now() < deadline) {
      samples.push((await h.connackMs(env.port)).ms);
      await h.sleep(10);
    }
    await pour;
    await pourer.disconnect();
    assert.ok(samples.length >= 100, `${samples.length} CONNACK samples`);
    const p99 = pct(samples, 99);
    assert.ok(p99 < 200, `CONNACK p99 ${p99.toFixed(1)} ms during the pour`);
    assert.strictEqual((await env.rr('dev-after-pour')).reply.success, true);
  });
});

test('every request leaves exactly one audit line: joined, dropped with its connection, abandoned at shutdown', async () => {
  const env = await h.startEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } });
  try {
    // a join: two requests on one connection, one flow; the first is superseded
    env.emu.setLatency(500);
    const device = await mqtt.connect(env.port, { clientId: 'dev-audit-1' });
    await device.subscribe('bootstrap/reply/dev-audit-1', 1);
    await device.publish('bootstrap/register', env.request('dev-audit-1'), { qos: 1 });
    await device.publish('bootstrap/register', env.request('dev-audit-1'), { qos: 1 });
    await device.waitFor(() => true, 5000);
    await device.disconnect();
    // a dropped connection
    await h.pub(env.port, { id: 'dev-audit-2', message: env.request('dev-audit-2') });
    for (let i = 0; i < 100 && auditLines(env).length < 3; i++) await h.sleep(50);
    // requests the platform has acted on (registered) but not yet answered when the broker stops
    env.emu.setLatency(0);
    env.emu.setAnswerLatency(5000);
    const late = ['dev-audit-3', 'dev-audit-4', 'dev-audit-5'].map((id) => env.rr(id, { timeoutS: 10 }));
    for (let i = 0; i < 100 && !['dev-audit-3', 'dev-audit-4', 'dev-audit-5'].every((id) => env.emu.device(h.PRODUCT_KEY, id)); i++) await h.sleep(50);
    const result = await env.broker.stop();
    assert.strictEqual(result.code, 0);
    await Promise.all(late);
    const byDevice = {};
    for (const l of auditLines(env)) (byDevice[l.deviceId] = byDevice[l.deviceId] || []).push(l.code);
    assert.deepStrictEqual(byDevice['dev-audit-1'], ['superseded', 'ok']);
    assert.deepStrictEqual(byDevice['dev-audit-2'], ['connection_closed']);
    for (const id of ['dev-audit-3', 'dev-audit-4', 'dev-audit-5']) {
      assert.ok(env.emu.device(h.PRODUCT_KEY, id), `${id} was registered on the platform`);
      assert.deepStrictEqual(byDevice[id], ['shutdown'], `${id}: one audit line, shutdown`);
    }
    env.assertLogClean();
  } finally {
    await env.stop();
  }
});

test('a flood of refusals cannot fill the disk through the audit file: unanswered ones are counted in one line a minute', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    const r = await env.publishMany(Array.from({ length: 2000 }, () => 'x'));
    assert.strictEqual(r.code, 0, r.stderr);
    let lines = [];
    const counted = (ls) => ls.reduce((n, l) => n + (l.unanswered ? l.unanswered : 1), 0);
    for (let i = 0; i < 120 && counted(lines) < 2000; i++) { await h.sleep(100); lines = auditLines(env); }
    const answered = lines.filter((l) => !l.unanswered);
    const summary = lines.filter((l) => l.unanswered);
    // the refusals answered under the limit (per client id and per address) have a line each,
    // the rest summary lines (one every 5 s at most) that count them; together every request
    assert.ok(answered.length <= 61, `${answered.length} lines for answered refusals`);
    assert.ok(summary.length >= 1 && summary.length <= 3, `${summary.length} summary lines`);
    assert.ok(summary.every((l) => l.code === 'rate_limited'));
    assert.strictEqual(counted(lines), 2000);
  });
});
