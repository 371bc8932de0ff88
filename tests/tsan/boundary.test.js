'use strict';
// ThreadSanitizer on the broker boundary: the plugin built with -DBOOTSTRAP_TSAN=ON (build-tsan,
// see scripts/test) in Debian's uninstrumented mosquitto with gcc's libtsan preloaded, driven so
// that the broker thread and the worker thread touch shared state at the same time: many signed
// requests with platform latency, several requests for the same deviceIds at once (joins, while
// queued and while in flight), refused requests, retries after platform faults, SIGHUPs that
// really swap the platform credentials while requests are in flight, and a shutdown with
// requests in flight; then the dynreg probe thread (the last test). Any ThreadSanitizer report
// in the broker's output fails the test; the reports are also written to
// BOOTSTRAP_BUILD_DIR/tsan-reports.txt.
//
// Kept outside tests/integration/ so that the ASan suite's glob does not run it with the ASan
// plugin. Run alone:
//   BOOTSTRAP_PLUGIN=build-tsan/mosquitto_bootstrap.so BOOTSTRAP_PRELOAD=$(gcc -print-file-name=libtsan.so) \
//     node tests/tsan/boundary.test.js
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../integration/lib/harness');
const mqtt = require('../integration/lib/mqtt_raw');

// halt_on_error=0: the broker runs on after a report, so one run shows every distinct race;
// history_size=7: the largest per-thread access history (4M accesses), so that the earlier of
// the two racing accesses still has its stack when the race is found, not "failed to restore";
// second_deadlock_stack=1: both stacks for lock-order inversions;
// report_signal_unsafe=0: malloc in a signal handler would be the broker's, not the plugin's.
// Anything in TSAN_OPTIONS already comes after these, so it wins.
const TSAN_DEFAULTS = 'halt_on_error=0 second_deadlock_stack=1 report_signal_unsafe=0 history_size=7';
process.env.TSAN_OPTIONS = [TSAN_DEFAULTS, process.env.TSAN_OPTIONS || ''].join(' ').trim();
const SUPPRESSIONS = path.join(__dirname, '..', 'tsan.supp');
if (fs.existsSync(SUPPRESSIONS)) process.env.TSAN_OPTIONS = `suppressions=${SUPPRESSIONS} ` + process.env.TSAN_OPTIONS;

// The codes the README documents; a device in this test gets success or one of these.
const TRANSIENT = new Set(['platform_unavailable', 'busy']);

function assertTsanSetup() {
  const plugin = process.env.BOOTSTRAP_PLUGIN;
  const hint = 'scripts/test builds it in build-tsan (-DBOOTSTRAP_TSAN=ON) and passes it to CTest as -DBOOTSTRAP_TSAN_PLUGIN';
  assert.ok(plugin && fs.existsSync(plugin), `BOOTSTRAP_PLUGIN must name the plugin built with ThreadSanitizer: ${hint}`);
  assert.ok(fs.readFileSync(plugin).includes('__tsan_func_entry'), `${plugin} is not built with -fsanitize=thread: ${hint}`);
  const preload = process.env.BOOTSTRAP_PRELOAD || '';
  assert.ok(/^libtsan\.so/.test(path.basename(preload)) && fs.existsSync(preload),
    'BOOTSTRAP_PRELOAD must name gcc\'s libtsan.so (gcc -print-file-name=libtsan.so)');
}

// The ThreadSanitizer reports in the broker's output: each is a block between "====" lines.
function tsanReports(log) {
  return log.split(/^==================$/m).map((b) => b.trim())
    .filter((b) => /^(WARNING|ERROR|FATAL): ThreadSanitizer/.test(b));
}

// A report in short: its title, and each stack's heading with its first frames.
function shortReport(report) {
  const out = [];
  let frames = 0;
  for (const line of report.split('\n')) {
    if (/^(WARNING|ERROR|FATAL|SUMMARY): ThreadSanitizer/.test(line)) out.push(line);
    else if (/^  \S/.test(line)) { out.push(line); frames = 0; }
    else if (/^\s+#\d+ /.test(line) && frames++ < 5) out.push(line.replace(/ \([^()]*\+0x[0-9a-f]+\)$/, ''));
  }
  // addresses and pids differ from one report of the same race to the next
  return out.join('\n').replace(/0x[0-9a-f]+/g, '0x…').replace(/ \(pid=\d+\)/, '');
}

// Stops the broker (if it still runs) and returns its ThreadSanitizer reports, written to
// BOOTSTRAP_BUILD_DIR/tsan-reports.txt when there are any; { error } is what stop() threw.
async function stopAndCollect(env) {
  let error = null, result = null;
  if (env.broker.proc) {
    try { result = await env.broker.stop(); } catch (e) { error = e; }
  }
  const reports = tsanReports(env.broker.log());
  let file = null;
  if (reports.length) {
    file = path.join(process.env.BOOTSTRAP_BUILD_DIR || os.tmpdir(), 'tsan-reports.txt');
    fs.writeFileSync(file, reports.join('\n==================\n') + '\n');
  }
  return { reports, file, error, result };
}

function failOnReports({ reports, file }) {
  if (!reports.length) return;
  const distinct = [...new Set(reports.map(shortReport))];
  assert.fail(`${reports.length} ThreadSanitizer report(s) from the broker, ${distinct.length} distinct (in full: ${file}):\n\n${distinct.join('\n\n')}`);
}

// Rewrites the credentials file the way a rotation does: a new file renamed over the old one.
function writeCredentials(env, text) {
  const file = path.join(env.dir, 'credentials');
  const tmp = file + '.new';
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  h.giveToBroker(tmp);
  fs.renameSync(tmp, file);
}

function keyFile(key) {
  return `[default]\ntype = access_key\naccess_key_id = ${key.id}\naccess_key_secret = ${key.secret}\n`;
}

// An impatient device: signed requests for deviceId every everyMs for forMs, all through its
// own connection (the client id is the deviceId: replies are bound to it). Most join the flow
// under way; some land right after the worker has taken the job up. Resolves with the first
// reply, a success opened with whichever of its randoms it was sealed for.
async function requestStream(env, deviceId, { everyMs = 5, forMs = 700, timeoutMs = 45000 } = {}) {
  const c = await mqtt.connect(env.port, { clientId: deviceId, keepAlive: 0 });
  await c.subscribe(`bootstrap/reply/${deviceId}`, 1);
  const randoms = [];
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    const random = crypto.randomBytes(10).toString('hex');
    randoms.push(random);
    await c.publish('bootstrap/register', env.request(deviceId, { random }), { qos: 0 });
    await h.sleep(everyMs);
  }
  const m = await c.waitFor(() => true, timeoutMs).catch(() => null);
  await c.disconnect();
  if (!m) return { reply: null, code: 'timeout' };
  const reply = JSON.parse(m.payload);
  if (reply.success) {
    for (const random of randoms) {
      try {
        reply.data = h.openSealed(reply, { productSecret: env.productSecret, random, productKey: env.productKey, deviceId });
        break;
      } catch (e) { /* sealed for another of its requests */ }
    }
    assert.ok(reply.data, `${deviceId}: a success reply that opens with none of its requests' keys`);
  }
  return { reply };
}

function checkReply(env, id, r, { allowNone = false } = {}) {
  if (!r.reply) {
    assert.ok(allowNone, `${id} got no reply (mosquitto_rr exit ${r.code})`);
    return 'no_reply';
  }
  assert.ok(!r.reply.unparsable, `${id}: unparsable reply`);
  if (r.reply.success) {
    assert.strictEqual(r.reply.data.DeviceName, id);
    const d = env.emu.device(h.PRODUCT_KEY, id);
    assert.ok(d, `${id} succeeded without a device on the platform`);
    h.assertSameSecret(r.reply.data.DeviceSecret, d.DeviceSecret, `${id} DeviceSecret`);
    return 'ok';
  }
  assert.ok(TRANSIENT.has(r.reply.code), `${id} got ${r.reply.code}: ${r.reply.message}`);
  assert.ok(r.reply.retryAfter > 0, `${id}: ${r.reply.code} without retryAfter`);
  return r.reply.code;
}

test('ThreadSanitizer: concurrent requests, joins, refusals, retries, SIGHUP credential swaps and a shutdown in flight', async (t) => {
  assertTsanSetup();
  const t0 = Date.now();
  const env = await h.startEnv({
    credentials: 'file',
    // a short HTTP timeout and deadline keep retries (and the retry heap) busy within the run
    // register_qps 10: a crowd of 150 new devices is more than single calls clear while a batch
    // registration runs, so the crowd below is batched
    pluginOptions: { http_timeout_ms: 1500, request_deadline_ms: 20000, max_inflight: 24, register_qps: 10,
      // the broker's other readers of worker state: the wake-up client, metrics, the audit trail
      wakeup_port: '$PORT', metrics_interval: 1, audit_file: '$DIR/audit.log' },
  });
  try {
    const keyA = { id: env.accessKeyId, secret: env.accessKeySecret };
    const keyB = { id: 'LTAI' + crypto.randomBytes(8).toString('hex'), secret: 'aksecret-' + crypto.randomBytes(12).toString('hex') };
    env.secrets.push(keyB.secret);
    env.emu.setAccessKeys({ [keyA.id]: { secret: keyA.secret }, [keyB.id]: { secret: keyB.secret } });
    env.emu.setLatency(300); // requests overlap: the worker waits in curl while the broker takes more
    const pre = Array.from({ length: 10 }, (_, i) => `pre-${String(i).padStart(3, '0')}`);
    for (const id of pre) env.emu.preRegister(h.PRODUCT_KEY, id); // RegisterDevice, then QueryDeviceDetail

    // SIGHUPs while everything below is in flight: the credentials swap A → B → A ..., one
    // broken file in the middle (the current ones are kept), the ProductSecret re-read each time.
    const hups = (async () => {
      const plan = ['B', 'A', 'garbage', 'B', 'A', 'B', 'A', 'B'];
      for (const k of plan) {
        await h.sleep(1200);
        writeCredentials(env, k === 'garbage' ? 'garbage\n' : keyFile(k === 'A' ? keyA : keyB));
        env.broker.proc.kill('SIGHUP');
      }
      // the broker takes a signal up at its next main-loop iteration
      for (let i = 0; i < 40 && (env.broker.log().match(/reload: (platform credentials reloaded|.* keeping the current credentials)/g) || []).length < plan.length; i++) await h.sleep(50);
    })();

    // faults mid-run: retries back off and come back through the worker's heap across reloads
    const faults = (async () => {
      await h.sleep(2500);
      env.emu.addFaults({ kind: '5xx', status: 503, count: 6 }, { kind: 'drop', count: 4 }, { kind: 'garbage', count: 3 });
    })();

    // many signed requests, in waves
    const normalIds = [];
    const normal = (async () => {
      const all = [];
      for (let wave = 0; wave < 6; wave++) {
        const ids = Array.from({ length: 10 }, (_, i) => `dev-${wave}-${String(i).padStart(3, '0')}`);
        if (wave === 2) ids.push(...pre);
        normalIds.push(...ids);
        all.push(...ids.map((id) => env.rr(id, { timeoutS: 45 })));
        await h.sleep(1500);
      }
      return Promise.all(all);
    })();

    // joins: the device keeps asking (each request with a new random) while its flow is queued
    // or in flight, and in bursts of four at once
    const joinIds = Array.from({ length: 12 }, (_, i) => `join-${String(i).padStart(3, '0')}`);
    const joins = (async () => {
      const all = [];
      for (const [n, id] of joinIds.entries()) {
        all.push(requestStream(env, id, { everyMs: 5 + (n % 4) * 20 }));
        await h.sleep(400);
      }
      return Promise.all(all);
    })();
    const burstIds = Array.from({ length: 8 }, (_, i) => `burst-${String(i).padStart(3, '0')}`);
    const bursts = (async () => {
      await h.sleep(3000);
      return Promise.all(burstIds.map((id) => requestStream(env, id, { everyMs: 0, forMs: 4 })));
    })();

    // refused: bad signs (each from its own loopback address, below the refusal rate limit),
    // a reused random, and bad payloads; some for deviceIds whose flows are running
    const refused = (async () => {
      await h.sleep(1000);
      const out = [];
      for (let i = 0; i < 8; i++) {
        const id = i % 2 ? joinIds[i] : `bad-${i}`;
        const message = env.request(id, { key: 'not-the-product-secret' });
        out.push(h.rr(env.port, { id: `refused-${i}`, message, responseTopic: `bootstrap/reply/refused-${i}`, extra: ['-A', `127.0.1.${i + 1}`] })
          .then((r) => ['unauthorized', r]));
        await h.sleep(300);
      }
      const random = crypto.randomBytes(8).toString('hex');
      const first = await env.rr('replay-001', { timeoutS: 45 });
      out.push(Promise.resolve(['first', first]));
      out.push(h.rr(env.port, { id: 'replay-001', message: env.request('replay-001', { random }), extra: ['-A', '127.0.2.1'] })
        .then(async (r) => {
          assert.ok(r.reply && r.reply.success, 'a request with a fresh random');
          return ['replay-ok', r];
        }));
      await out[out.length - 1];
      out.push(h.rr(env.port, { id: 'replay-001', message: env.request('replay-001', { random }), extra: ['-A', '127.0.2.2'] })
        .then((r) => ['unauthorized', r]));
      for (const [message, code] of [['{"deviceId":1234}', 'invalid_request'], ['{"deviceId":"dev+0001"}', 'invalid_device_id'],
        ['{"deviceId":"dev-x","deviceId":"dev-y"}', 'invalid_request'], [null, 'invalid_request'], ['x'.repeat(2000), 'invalid_request']]) {
        out.push(h.rr(env.port, { id: `payload-${out.length}`, message, responseTopic: `bootstrap/reply/payload-${out.length}` }).then((r) => [code, r]));
      }
      return Promise.all(out);
    })();

    const [normalReplies, joinReplies, burstMessages, refusedReplies] = await Promise.all([normal, joins, bursts, refused, hups, faults]);
    const outcomes = {};
    const tally = (o) => { outcomes[o] = (outcomes[o] || 0) + 1; };
    normalReplies.forEach((r, i) => tally(checkReply(env, normalIds[i], r)));
    joinReplies.forEach((r, i) => tally(checkReply(env, joinIds[i], r)));
    burstMessages.forEach((r, i) => tally(checkReply(env, burstIds[i], r)));
    for (const [want, r] of refusedReplies) {
      if (want === 'first' || want === 'replay-ok') continue;
      assert.ok(r.reply, `a ${want} request got no reply`);
      assert.strictEqual(r.reply.code, want);
    }
    assert.strictEqual(env.emu.stats().faultsServed, 13, 'every injected fault was met (and retried)');
    const devices = normalIds.length + joinIds.length + burstIds.length;
    assert.ok((outcomes.ok || 0) >= devices * 0.8, `only ${outcomes.ok} of ${devices} devices got their triple: ${JSON.stringify(outcomes)}`);

    const log = env.broker.log();
    const joined = (log.match(/already in progress, joined/g) || []).length;
    assert.ok(joined >= 10, `${joined} requests joined a flow under way`);
    const reloads = (log.match(/reload: platform credentials reloaded from credentials file/g) || []).length;
    assert.strictEqual(reloads, 7, 'every SIGHUP with a good file swapped the credentials');
    assert.match(log, /reload: .* keeping the current credentials/);

    // joins in a quiet broker, where the worker's lock is rarely taken: the stream's first
    // request starts the flow, and its next ones keep arriving while the worker takes the job
    // up (the device's own request joins too)
    const quietIds = Array.from({ length: 8 }, (_, i) => `quiet-${String(i).padStart(3, '0')}`);
    for (const id of quietIds) tally(checkReply(env, id, await requestStream(env, id, { everyMs: 2, forMs: 300, timeoutMs: 30000 })));

    // the swap was real: with key A revoked, key B (the last one loaded) still works
    env.emu.setAccessKeys({ [keyB.id]: { secret: keyB.secret } });
    env.emu.setLatency(0);
    const afterSwap = await env.rr('swapped-001', { timeoutS: 20 });
    assert.strictEqual(checkReply(env, 'swapped-001', afterSwap), 'ok', 'signed with the key loaded last');

    // a crowd: lookups in BatchQueryDeviceDetail and a batch registration (check, poll,
    // register, poll, pages) run in the worker while the broker takes the results, and a SIGHUP
    // replaces the worker's configuration mid-batch
    env.emu.setBatch({ checkDurationMs: 300, createDurationMs: 300 });
    const crowdOld = Array.from({ length: 40 }, (_, i) => `crowd-old-${String(i).padStart(3, '0')}`);
    for (const id of crowdOld) env.emu.preRegister(h.PRODUCT_KEY, id);
    const crowdIds = [...crowdOld, ...Array.from({ length: 160 }, (_, i) => `crowd-new-${String(i).padStart(3, '0')}`)];
    const crowd = Promise.all(crowdIds.map((id) => env.rr(id, { timeoutS: 45 })));
    await h.sleep(1500);
    env.broker.proc.kill('SIGHUP');
    (await crowd).forEach((r, i) => tally(checkReply(env, crowdIds[i], r)));
    const batch = env.emu.stats().batch;
    assert.ok(batch.appliesCreated >= 1 && batch.devicesCreated >= 50, `the crowd was batched: ${JSON.stringify(batch)}`);

    // shutdown with requests queued and in flight: those devices get no reply (documented), or
    // an answer that made it out before the broker stopped
    env.emu.setLatency(2000);
    const lateIds = Array.from({ length: 30 }, (_, i) => `late-${String(i).padStart(3, '0')}`);
    const late = Promise.all(lateIds.map((id) => env.rr(id, { timeoutS: 20 })));
    await h.sleep(800);
    env.broker.proc.kill('SIGHUP');
    await h.sleep(300);
    const stopping = Date.now();
    const stopped = await stopAndCollect(env);
    const stopMs = Date.now() - stopping;
    failOnReports(stopped);
    if (stopped.error) throw stopped.error;
    assert.strictEqual(stopped.result.code, 0, 'the broker exited cleanly');
    assert.ok(stopMs < 10000, `shutdown took ${stopMs} ms`);
    (await late).forEach((r, i) => tally(checkReply(env, lateIds[i], r, { allowNone: true })));
    assert.match(env.broker.log(), /mosquitto_bootstrap: shutting down with \d+ requests unanswered/);
    env.assertLogClean();
    t.diagnostic(`outcomes ${JSON.stringify(outcomes)}; ${joined} joins; ${reloads} reloads; shutdown ${stopMs} ms; ${Date.now() - t0} ms in all`);
  } catch (e) {
    // a failure before the shutdown: the broker's reports still count, and are kept
    if (!env.broker.proc) throw e; // collected already
    const stopped = await stopAndCollect(env);
    if (stopped.reports.length) e.message += `\n(and ${stopped.reports.length} ThreadSanitizer report(s) in ${stopped.file})`;
    throw e;
  } finally {
    await env.stop();
  }
});

// Multi-broker mode adds a thread (Redis's) and a queue between it, the worker and the broker
// thread: admissions and leases (worker), refusal counts and joined requests' replay checks
// (broker thread), releases, the state the broker thread logs and publishes. Driven while Redis
// answers, while it is killed and started again, while it is frozen, with a device that "another
// broker" holds (its lock written into Redis here), SIGHUPs, and a shutdown in flight.
test('ThreadSanitizer: multi-broker mode, with Redis killed, restarted and frozen mid-run', async (t) => {
  assertTsanSetup();
  const redis = await h.startRedis();
  const env = await h.startEnv(await h.operatorOptions({
    pluginOptions: { redis_url: redis.url, http_timeout_ms: 1500, request_deadline_ms: 15000, max_inflight: 24,
      wakeup_port: '$PORT', metrics_interval: 1, audit_file: '$DIR/audit.log' },
  }));
  try {
    env.emu.setLatency(200);
    await h.waitForSys(env, 'shared/state', (v) => v === 'connected', { timeoutMs: 5000 });
    const outcomes = {};
    const tally = (o) => { outcomes[o] = (outcomes[o] || 0) + 1; };

    // a device another broker works on: its lock and that broker's heartbeat, written here;
    // the worker polls it, and takes it up (as a lookup) once the other one is done
    const held = 'held-001';
    const now = Date.now();
    await redis.cli('ZADD', 'mosquitto-bootstrap:brokers', String(now + 60000), 'otherbroker00001');
    await redis.cli('SET', `mosquitto-bootstrap:flow:${h.PRODUCT_KEY}:${held}`, 'otherbroker00001', 'PX', '60000');
    const heldReply = env.rr(held, { timeoutS: 30 });
    const release = (async () => {
      await h.sleep(1500);
      env.emu.preRegister(h.PRODUCT_KEY, held);
      await redis.cli('SET', `mosquitto-bootstrap:flow:${h.PRODUCT_KEY}:${held}`, 'done', 'PX', '60000');
    })();

    // waves of signed requests, joins (streams of requests, each with a new random), a replay
    // that joins a flow, refusals; Redis killed and started again, then frozen, meanwhile
    const waves = (async () => {
      const all = [];
      for (let wave = 0; wave < 6; wave++) {
        const ids = Array.from({ length: 10 }, (_, i) => `sh-${wave}-${String(i).padStart(3, '0')}`);
        all.push(...ids.map((id) => env.rr(id, { timeoutS: 40 }).then((r) => [id, r])));
        await h.sleep(1000);
      }
      return Promise.all(all);
    })();
    const joins = (async () => {
      const all = [];
      for (let n = 0; n < 8; n++) {
        const id = `shjoin-${String(n).padStart(3, '0')}`;
        all.push(requestStream(env, id, { everyMs: 10, forMs: 300 }).then((r) => [id, r]));
        await h.sleep(600);
      }
      return Promise.all(all);
    })();
    const refusals = (async () => {
      const out = [];
      for (let i = 0; i < 6; i++) {
        out.push(await h.rr(env.port, { id: `shref-${i}`, message: env.request(`shbad-${i}`, { key: 'not-the-product-secret' }),
          responseTopic: `bootstrap/reply/shref-${i}`, extra: ['-A', `127.0.3.${i + 1}`] }));
        await h.sleep(500);
      }
      return out;
    })();
    const outage = (async () => {
      await h.sleep(2000);
      await redis.kill('SIGKILL');
      await h.sleep(2500);
      await redis.start();
      await h.sleep(2500);
      redis.kill('SIGSTOP');
      await h.sleep(1200);
      redis.kill('SIGCONT');
      env.broker.proc.kill('SIGHUP');
    })();

    const [waveReplies, joinReplies, refused] = await Promise.all([waves, joins, refusals, outage, release]);
    for (const [id, r] of waveReplies) tally(checkReply(env, id, r));
    for (const [id, r] of joinReplies) tally(checkReply(env, id, r));
    for (const r of refused) assert.strictEqual(r.reply && r.reply.code, 'unauthorized');
    tally(checkReply(env, held, await heldReply));
    assert.ok((outcomes.ok || 0) >= 60, `only ${outcomes.ok} devices got their triple: ${JSON.stringify(outcomes)}`);
    // down after the kill and after the freeze, and back
    await h.waitForSys(env, 'shared/outages', (v) => v === '2', { timeoutMs: 5000 });
    await h.waitForSys(env, 'shared/state', (v) => v === 'connected', { timeoutMs: 5000 });

    // a request whose random another broker used (recorded in Redis here) joins a flow under
    // way: the broker thread has Redis check it while the worker runs the flow
    env.emu.setLatency(800);
    await redis.cli('SET', `mosquitto-bootstrap:replay:${h.PRODUCT_KEY}:shreplay-001:usedelsewhere01`, '1', 'EX', '600');
    const c = await mqtt.connect(env.port, { clientId: 'shreplay-001' });
    try {
      await c.subscribe('bootstrap/reply/shreplay-001', 0);
      await c.publish('bootstrap/register', env.request('shreplay-001'), { qos: 1 });
      await h.sleep(100);
      await c.publish('bootstrap/register', env.request('shreplay-001', { random: 'usedelsewhere01' }), { qos: 1 });
      const m = await c.waitFor(() => true, 10000);
      assert.strictEqual(JSON.parse(m.payload).code, 'unauthorized');
    } finally {
      await c.disconnect();
    }

    // shutdown with requests queued and in flight, Redis answering
    env.emu.setLatency(2000);
    const late = Promise.all(Array.from({ length: 20 }, (_, i) => env.rr(`shlate-${i}`, { timeoutS: 15 })));
    await h.sleep(700);
    const stopped = await stopAndCollect(env);
    failOnReports(stopped);
    if (stopped.error) throw stopped.error;
    assert.strictEqual(stopped.result.code, 0, 'the broker exited cleanly');
    await late;
    env.assertLogClean();
    t.diagnostic(`outcomes ${JSON.stringify(outcomes)}`);
  } catch (e) {
    if (!env.broker.proc) throw e;
    const stopped = await stopAndCollect(env);
    if (stopped.reports.length) e.message += `\n(and ${stopped.reports.length} ThreadSanitizer report(s) in ${stopped.file})`;
    throw e;
  } finally {
    redis.kill('SIGCONT');
    await env.stop();
    await redis.stop();
  }
});

// The dynreg probe thread (plugin_opt_dynreg_mqtt on, docs/link-sdk.md "Which listener"): its
// verdicts are stored while dynreg CONNECTs on the named port read them and the tick logs them,
// a SIGHUP comes meanwhile; a second broker is stopped while the thread waits on a port that
// accepts and never answers (made here), so that the stop flag and the join are exercised.
test('ThreadSanitizer: the dynreg probe thread, its verdicts read while stored, a stop mid-handshake', async (t) => {
  assertTsanSetup();
  const net = require('net');
  const held = [];
  let onConnection = null;
  const silent = net.createServer((s) => { held.push(s); s.on('error', () => {}); if (onConnection) onConnection(); });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = silent.address().port;
  const connected = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the probe never connected to the silent port')), 20000);
    onConnection = () => { onConnection = null; clearTimeout(timer); resolve(); };
  });
  // the Link SDK's dynregmq CONNECT, signed with the product secret
  const dynreg = (env, dn) => {
    const random = String(crypto.randomBytes(4).readUInt32BE());
    return { clientId: `${dn}.${env.productKey}|random=${random},authType=register,securemode=2,signmethod=hmacsha256|`,
      username: `${dn}&${env.productKey}`, keepAlive: 1200,
      password: crypto.createHmac('sha256', env.productSecret).update(`deviceName${dn}productKey${env.productKey}random${random}`).digest('hex').toUpperCase() };
  };
  let baselineMs = 0; // how long this broker takes to stop with the probe done: TSan's exit is slow
  const plainRe = /plugin_opt_dynreg_tls_ports: port \d+ is not a TLS listener \(in the clear on 127\.0\.0\.1\)/;
  try {
    const env = await h.startEnv({ pluginOptions: { dynreg_mqtt: 'on', dynreg_tls_ports: '$PORT' } });
    try {
      // a SIGHUP does not touch the probe (2.0 reloads neither listeners nor plugin options)
      env.broker.proc.kill('SIGHUP');
      let n = 0;
      for (const until = Date.now() + 20000; (n < 3 || !plainRe.test(env.broker.log())) && Date.now() < until; n++) {
        const c = await mqtt.connect(env.port, dynreg(env, `tsan-dyn-${n}`));
        assert.strictEqual(c.connack.returnCode, 5, 'a dynreg CONNECT on a plain listener is refused');
        await c.destroy();
      }
      await h.waitForLog(env, /Reloading config/);
      assert.match(env.broker.log(), plainRe);
      const c = await mqtt.connect(env.port, dynreg(env, 'tsan-dyn-after'));
      assert.strictEqual(c.connack.returnCode, 5);
      await c.destroy();
      const t0 = Date.now();
      const stopped = await stopAndCollect(env);
      baselineMs = Date.now() - t0;
      failOnReports(stopped);
      if (stopped.error) throw stopped.error;
      assert.strictEqual(stopped.result.code, 0, 'the broker exited cleanly');
    } finally {
      await env.stop();
    }

    const env2 = await h.startEnv({ pluginOptions: { dynreg_mqtt: 'on', dynreg_tls_ports: String(silentPort) } });
    try {
      await connected;
      const t0 = Date.now();
      const stopped = await stopAndCollect(env2);
      const took = Date.now() - t0;
      failOnReports(stopped);
      if (stopped.error) throw stopped.error;
      assert.strictEqual(stopped.result.code, 0, 'the broker exited cleanly');
      t.diagnostic(`stopped in ${took} ms while the probe waited; ${baselineMs} ms with the probe done`);
      assert.ok(took < baselineMs + 1500, `the broker took ${took} ms to stop while the probe waited (${baselineMs} ms with the probe done)`);
      assert.doesNotMatch(env2.broker.log(), /no answer in time/);
    } finally {
      await env2.stop();
    }
  } finally {
    for (const s of held) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});
