'use strict';
// Runs every benchmark scenario with its baselines on this machine and writes a results table.
//
//   node bench/run.js [--quick] [--only S1,S4] [--out DIR] [--check]
//   node bench/run.js --only S9 [--devices N] [--stage-check-s S] [--stage-create-s S] [--stage-jitter F]
//        [--arrival-s S] [--concurrency N] [--s9-modes off,auto,seed] [--s9-base N]   (S9's size; defaults: issue 24's)
//
// Needs BOOTSTRAP_PLUGIN (the built plugin) and BOOTSTRAP_LOADGEN (bench/loadgen), both set by
// scripts/bench. --quick shrinks every scenario to finish within a minute or two; --check fails
// when a scenario did not produce its result (every device answered, the tools worked). Timings
// are reported, never asserted.
//
// The method (BENCHMARKS.md, "Method"):
// - The platform is reached over HTTPS with kept-alive connections, as in production: the bench
//   makes its own CA and a certificate for 127.0.0.1/localhost (openssl, into its temporary
//   directory), the emulator serves TLS with it, the plugin trusts the CA (plugin_opt_ca_file),
//   the seed function (Alibaba's pop-core) through NODE_EXTRA_CA_CERTS, the "emulator alone" driver
//   through its https.Agent. The devices' own hop (MQTT to the broker, HTTP to the seed function)
//   is plain TCP on loopback for every architecture alike.
// - A p99 is reported only from 200 samples or more; with fewer the row gives the maximum and n.
// - Every row says what bounds its numbers (quota, the broker's tick, CPU, platform latency).
const fs = require('fs');
const http = require('http');
const https = require('https');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const h = require('../tests/integration/lib/harness');
const { sign, canonicalQuery, DOCUMENTED_QPS } = require('../tests/emulator/emulator.js');

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const CHECK = args.includes('--check');
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;
const OUT = args.includes('--out') ? args[args.indexOf('--out') + 1] : path.join(__dirname, 'results');
const LOADGEN = process.env.BOOTSTRAP_LOADGEN || path.join(path.dirname(process.env.BOOTSTRAP_PLUGIN || ''), 'loadgen');
const QUOTA = { RegisterDevice: 30, QueryDeviceDetail: 50 };
const NO_QUOTA = { register_qps: 10000, register_burst: 10000, query_qps: 10000, query_burst: 10000 };
// fewer samples than this: no p99 (it would be the maximum or next to it), the maximum and n instead
const MIN_P99_SAMPLES = 200;
// the idle tick of Mosquitto 2.0's main loop (epoll_wait's timeout)
const TICK_MS = 100;
// S5: a device asks this long after the previous one was answered (the plugin's 30/s pacing: 34 ms)
const S5_GAP_MS = 40;

// the example configuration's log level: benchmarks measure the broker as it is run
const LOG = ['error', 'warning', 'notice', 'information'];
// the broker accepts as many connections as S4 holds (Mosquitto's default is no limit: said explicitly)
const BROKER_CONFIG = 'max_connections 20000';

// S9 (issue 24): a fleet switched on at once against the platform's real batch stage times; the
// full size is the issue's (100 000 devices, 60 s + 120 s stages, 20 % jitter, within 10 s)
const s9arg = (name, full, quick) => (args.includes('--' + name) ? Number(args[args.indexOf('--' + name) + 1]) : QUICK ? quick : full);
const S9 = { devices: s9arg('devices', 100000, 300), checkS: s9arg('stage-check-s', 60, 1), createS: s9arg('stage-create-s', 120, 2),
  jitter: s9arg('stage-jitter', 0.2, 0.2), arrivalS: s9arg('arrival-s', 10, 2), concurrency: s9arg('concurrency', 1024, 256),
  modes: args.includes('--s9-modes') ? args[args.indexOf('--s9-modes') + 1].split(',') : ['off', 'auto', 'seed'],
  // `batching off` and the seed are bound by RegisterDevice's 30/s (a fleet of 100 000 takes them
  // 56 minutes): they run this many devices, and the full fleet's time is their rate's, scaled
  base: s9arg('s9-base', 10000, 300) };
const FLEET = path.join(__dirname, 'fleet.js');

const N = QUICK
  ? { s1: 150, s2: 40, s3: 60, s4: 100, s4mem: 500, s4reps: 1, s4hold: 1, idleProbes: 30, s5: 20, s5lat: [0, 50], s6: 100, s7: 300, s7base: 60, s7stageMs: 500, s8: 30 }
  : { s1: 2000, s2: 3000, s3: 3000, s4: 1000, s4mem: 10000, s4reps: 3, s4hold: 5, idleProbes: MIN_P99_SAMPLES, s5: MIN_P99_SAMPLES, s5lat: [0, 20, 50, 90, 150], s6: 10000, s7: 10000, s7base: 3000, s7stageMs: 2000, s8: 1000 };

// ---- the bench's own PKI: the emulator's certificate for 127.0.0.1 and localhost ----
const WORK = h.makeWorkdir();
process.on('exit', () => fs.rmSync(WORK, { recursive: true, force: true }));
const PKI = h.makePki(WORK);
const EMU_TLS = { ...PKI.leaf('emulator', { cn: '127.0.0.1', dns: ['localhost'], ip: ['127.0.0.1'] }), ca: PKI.ca };
const CA_PEM = fs.readFileSync(PKI.ca);

// Request batching (plugin_opt_batching auto|off, default auto) comes with the batching plugin;
// before it the option is unknown and a broker given it refuses to start. Asked once: true when
// this plugin takes `plugin_opt_batching off`.
let batchingSupported = null;
async function pluginHasBatching() {
  if (batchingSupported === null) {
    try {
      const env = await h.startEnv({ emulatorProcess: true, logTypes: LOG, pluginOptions: { batching: 'off' } });
      await env.stop();
      batchingSupported = true;
    } catch (e) {
      if (!/plugin_opt_batching: unknown option/.test(e.message)) throw e;
      batchingSupported = false;
    }
  }
  return batchingSupported;
}

// An environment: the emulator (its own process, HTTPS) and the broker, with the plugin unless
// noPlugin. Every scenario but the `batching auto` runs of S6/S7 measures single platform calls:
// with a plugin that batches, `batching off` is set unless pluginOptions say otherwise (without
// it S1-S5 would measure something else after the batching merge, and S6/S7's `off` run would be
// `auto`, the default); a plugin without batching gets no such option.
async function startEnv({ pluginOptions = {}, emulator = {}, ...rest } = {}) {
  const single = !rest.noPlugin && !('batching' in pluginOptions) && (await pluginHasBatching()) ? { batching: 'off' } : {};
  return h.startEnv({ emulatorProcess: true, logTypes: LOG, extraConfig: BROKER_CONFIG, ...rest,
    emulator: { quota: null, ...emulator, tls: EMU_TLS },
    pluginOptions: { ca_file: PKI.ca, max_queue: 20000, ...single, ...pluginOptions } });
}

function runJson(cmd, argv, { env } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    h.live.add(p);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => {
      h.live.delete(p);
      const line = out.trim().split('\n').pop();
      try { resolve(JSON.parse(line)); } catch (e) { reject(new Error(`${path.basename(cmd)} exited ${code}: ${err || out}`)); }
    });
  });
}

function loadgen(env, n, extra = []) {
  const argv = ['-p', String(env.port), '-n', String(n), '--product-key', env.productKey, '--broker-pid', String(env.broker.proc.pid),
    '--prefix', 'bench' + Math.random().toString(36).slice(2, 6), ...extra];
  if (env.productSecretFile) argv.push('--product-secret-file', env.productSecretFile);
  return runJson(LOADGEN, argv);
}

function procCpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
}

function latencyOf(lat) {
  return { samples: lat.length, p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: lat.length ? Math.max(...lat) : 0 };
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// n POSTs built by makeBody(i), at most `concurrency` at a time, through kept-alive connections.
// ca: HTTPS trusting it, else plain HTTP. atOnce: every request counts as made at the start, its
// latency from then (waiting for a connection included), as loadgen's devices that all ask at once;
// otherwise latency is per call. retryMs: a request that failed is made again that much later
// (it waits without holding a connection), as a device would, until timeoutS.
async function httpStorm(port, n, concurrency, makeBody, { ca = null, atOnce = false, retryMs = 0, timeoutS = 900 } = {}) {
  const agent = new (ca ? https : http).Agent({ keepAlive: true, maxSockets: concurrency, ...(ca ? { ca } : {}) });
  const lat = [];
  let ok = 0, attempts = 0, failedAttempts = 0, gaveUp = 0, next = 0;
  const retries = []; // { i, at }, in the order they become due
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + timeoutS * 1000;
  const post = (body) => new Promise((resolve) => {
    const req = (ca ? https : http).request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent,
      headers: { 'Content-Type': body.type, 'Content-Length': Buffer.byteLength(body.text) } }, (r) => {
      let d = '';
      r.on('data', (x) => { d += x; });
      r.on('end', () => resolve({ status: r.statusCode, d }));
    });
    req.on('error', () => resolve({ status: 0 }));
    req.end(body.text);
  });
  async function worker() {
    for (;;) {
      let i;
      if (retries.length && retries[0].at <= Date.now()) i = retries.shift().i;
      else if (next < n) i = next++;
      else if (retries.length) { await sleep(Math.max(1, retries[0].at - Date.now())); continue; }
      else return;
      const s = process.hrtime.bigint();
      const res = await post(makeBody(i));
      attempts++;
      if (res.status === 200 && /"(success|Success)":true/.test(res.d)) {
        ok++;
        lat.push(Number(process.hrtime.bigint() - (atOnce ? t0 : s)) / 1e6);
      } else {
        failedAttempts++;
        if (retryMs && Date.now() + retryMs < deadline) retries.push({ i, at: Date.now() + retryMs });
        else gaveUp++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  return { requests: n, ok, attempts, failed_attempts: failedAttempts, gave_up: gaveUp, seconds, per_s: ok / seconds, latency_ms: latencyOf(lat) };
}

const deviceName = (prefix, i) => `${prefix}-${String(i).padStart(5, '0')}`;

// The seed architecture: the pop-core HTTP function (HTTPS to the emulator, pop-core's own
// kept-alive agent, the bench's CA through NODE_EXTRA_CA_CERTS) driven at `concurrency`.
// names: 'seed' (new devices) or a preRegister prefix. quota/retryMs: for the quota scenarios,
// where a throttled call makes the function answer 502 and the device asks again retryMs later.
async function seedBaseline(n, concurrency, { latencyMs = 0, quota = null, preRegister = null, emulator = {}, retryMs = 0, timeoutS = 900 } = {}) {
  const env = await startEnv({ noPlugin: true, emulator });
  let fn;
  try {
    if (preRegister) await env.emu.preRegister(env.productKey, Array.from({ length: n }, (_, i) => deviceName(preRegister, i)));
    await env.emu.setQuota(quota);
    await env.emu.setLatency(latencyMs);
    const port = await h.freePort();
    fn = spawn(process.execPath, [path.join(__dirname, 'seed/function.js'), String(port), `https://127.0.0.1:${env.emuPort}/`, env.productKey],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: PKI.ca, ALIBABA_CLOUD_ACCESS_KEY_ID: env.accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: env.accessKeySecret },
        stdio: ['ignore', 'pipe', 'inherit'] });
    h.live.add(fn);
    await new Promise((resolve) => fn.stdout.on('data', (d) => { if (String(d).includes('listening')) resolve(); }));
    const cpu0 = procCpuSeconds(fn.pid), emuCpu0 = procCpuSeconds(env.emu.pid);
    const prefix = preRegister || 'seed';
    const r = await httpStorm(port, n, concurrency, (i) => ({ type: 'application/json', text: JSON.stringify({ deviceId: deviceName(prefix, i) }) }),
      { atOnce: true, retryMs, timeoutS });
    r.function_cpu_s = procCpuSeconds(fn.pid) - cpu0;
    r.emulator_cpu_s = procCpuSeconds(env.emu.pid) - emuCpu0;
    r.cpu_ms_per_bootstrap = (r.function_cpu_s * 1000) / Math.max(1, r.ok);
    const emu = await env.emu.stats();
    r.emulator = { calls: emu.byAction, throttled: emu.throttled, throttled_by: emu.throttledBy, connections: emu.connections };
    return r;
  } finally {
    if (fn) fn.kill('SIGTERM');
    await env.stop();
  }
}

// The emulator alone: signed RegisterDevice calls over HTTPS, kept alive, at `concurrency`, per
// call latency; once per platform latency in latencies (one emulator for all).
async function emulatorAlone(n, concurrency, latencies = [0]) {
  const env = await startEnv({ noPlugin: true });
  try {
    const out = [];
    for (const latencyMs of latencies) {
      await env.emu.setLatency(latencyMs);
      const emuCpu0 = procCpuSeconds(env.emu.pid);
      const tag = Math.random().toString(36).slice(2, 6);
      const r = await httpStorm(env.emuPort, n, concurrency, (i) => {
        const p = { Action: 'RegisterDevice', Format: 'JSON', Version: '2018-01-20', AccessKeyId: env.accessKeyId, SignatureMethod: 'HMAC-SHA1',
          SignatureVersion: '1.0', SignatureNonce: `${process.pid}-${Date.now()}-${i}-${Math.random()}`, Timestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          ProductKey: env.productKey, DeviceName: `alone${tag}-${String(i).padStart(5, '0')}` };
        return { type: 'application/x-www-form-urlencoded', text: canonicalQuery(p) + '&Signature=' + encodeURIComponent(sign('POST', p, env.accessKeySecret)) };
      }, { ca: CA_PEM });
      r.latency_ms_platform = latencyMs;
      r.emulator_cpu_s = procCpuSeconds(env.emu.pid) - emuCpu0;
      out.push(r);
    }
    return out;
  } finally {
    await env.stop();
  }
}

// Broker ceiling: no plugin, a responder client answers every request on the reply topic. Its
// CPU is counted with the broker's: together they do what the plugin does inside the broker.
async function ceiling(n) {
  const env = await startEnv({ noPlugin: true, requestAuth: 'none' });
  const responder = spawn(LOADGEN, ['-p', String(env.port), '-n', '1', '--responder'], { stdio: ['ignore', 'pipe', 'inherit'] });
  h.live.add(responder);
  try {
    await new Promise((resolve) => responder.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); }));
    const r = await loadgen(env, n, ['--responder-pid', String(responder.pid)]);
    r.cpu_ms_per_request_broker = (r.broker.cpu_s * 1000) / Math.max(1, r.ok);
    r.cpu_ms_per_request_responder = (r.responder.cpu_s * 1000) / Math.max(1, r.ok);
    r.cpu_ms_per_request = r.cpu_ms_per_request_broker + r.cpu_ms_per_request_responder;
    return r;
  } finally {
    responder.kill('SIGTERM');
    await env.stop();
  }
}

// One loadgen run against an environment with the plugin: the result with the emulator's counts.
async function measure(env, n, { latencyMs = 0, quota = null, loadgenArgs = [], preRegister = null } = {}) {
  if (preRegister) await env.emu.preRegister(env.productKey, Array.from({ length: n }, (_, i) => deviceName(preRegister, i)));
  await env.emu.setQuota(quota);
  await env.emu.setLatency(latencyMs);
  const before = await env.emu.stats();
  const emuCpu0 = procCpuSeconds(env.emu.pid);
  const r = await loadgen(env, n, preRegister ? loadgenArgs.concat(['--prefix', preRegister]) : loadgenArgs);
  r.emulator_cpu_s = procCpuSeconds(env.emu.pid) - emuCpu0;
  r.cpu_ms_per_bootstrap = (r.broker.cpu_s * 1000) / Math.max(1, r.ok);
  const emu = await env.emu.stats();
  const calls = {};
  for (const [k, v] of Object.entries(emu.byAction)) if (v - (before.byAction[k] || 0)) calls[k] = v - (before.byAction[k] || 0);
  const throttledBy = {};
  for (const [k, v] of Object.entries(emu.throttledBy || {})) if (v - ((before.throttledBy || {})[k] || 0)) throttledBy[k] = v - ((before.throttledBy || {})[k] || 0);
  // the emulator is strict (a gateway that verifies the bytes it received): a signature the
  // gateway would refuse shows here, not only as slower devices
  const strictRefused = Object.values(emu.strict || {}).reduce((a, b) => a + b, 0) - Object.values(before.strict || {}).reduce((a, b) => a + b, 0);
  r.emulator = { calls, throttled: emu.throttled - before.throttled, throttled_by: throttledBy, connections: emu.connections - before.connections,
    signature_failures: (emu.signatureFailures || 0) - (before.signatureFailures || 0), strict_refusals: strictRefused };
  r.register_per_s = (calls.RegisterDevice || 0) / r.seconds;
  r.query_per_s = (calls.QueryDeviceDetail || 0) / r.seconds;
  return r;
}

// The plugin against the emulator; preRegister: devices <prefix>-00000.. exist beforehand.
async function pluginRun(n, { pluginOptions = {}, emulator = {}, ...m } = {}) {
  const env = await startEnv({ pluginOptions, emulator });
  try {
    const r = await measure(env, n, m);
    await env.assertLogClean();
    return r;
  } finally {
    await env.stop();
  }
}

// The broker log holds no secret, as env.assertLogClean() checks, in linear time: with 100 000
// devices, a search of the whole log for each DeviceSecret (32 hex digits) takes hours, so
// the log's runs of hex digits are looked up in a set of them instead; the few other secrets
// (the harness's own and those the emulator issued) are searched as before.
async function assertFleetLogClean(env) {
  const [devices, issued] = await Promise.all([env.emu.allDeviceSecrets(), env.emu.allIssuedSecrets()]);
  const hex = new Set(), others = [];
  for (const x of devices.concat(issued).filter(Boolean)) {
    if (/^[0-9a-f]{32}$/.test(x)) hex.add(x);
    else others.push(x);
  }
  const log = env.broker.log();
  let leaked = 0;
  for (const m of log.matchAll(/[0-9a-f]{32,}/g)) {
    for (let i = 0; i + 32 <= m[0].length; i++) if (hex.has(m[0].slice(i, i + 32))) leaked++;
  }
  if (leaked) throw new Error(`${leaked} DeviceSecret(s) appear in the broker log`);
  env.assertNoneLogged(others);
}

// One fleet run (S9): bench/fleet.js against a broker with the plugin, every documented quota,
// platform 100 ms; the emulator's calls and Throttling answers over the run.
async function fleetRun(n, { pluginOptions = {}, emulator = {} } = {}) {
  const env = await startEnv({ pluginOptions, emulator });
  try {
    await env.emu.setQuota(DOCUMENTED_QPS);
    await env.emu.setLatency(100);
    const before = await env.emu.stats();
    const emuCpu0 = procCpuSeconds(env.emu.pid);
    const argv = [FLEET, '-p', String(env.port), '--devices', String(n), '--product-key', env.productKey, '--broker-pid', String(env.broker.proc.pid),
      '--arrival-s', String(S9.arrivalS), '--concurrency', String(S9.concurrency), '--timeout-s', String(Math.ceil(n / 25) + 600)];
    if (env.productSecretFile) argv.push('--product-secret-file', env.productSecretFile);
    const r = await runJson(process.execPath, argv);
    r.emulator_cpu_s = procCpuSeconds(env.emu.pid) - emuCpu0;
    const emu = await env.emu.stats();
    const calls = {};
    for (const [k, v] of Object.entries(emu.byAction)) if (v - (before.byAction[k] || 0)) calls[k] = v - (before.byAction[k] || 0);
    const throttledBy = {};
    for (const [k, v] of Object.entries(emu.throttledBy || {})) if (v - ((before.throttledBy || {})[k] || 0)) throttledBy[k] = v - ((before.throttledBy || {})[k] || 0);
    r.emulator = { calls, throttled: emu.throttled - before.throttled, throttled_by: throttledBy,
      applies: (emu.batch && emu.batch.appliesCreated || 0) - (before.batch && before.batch.appliesCreated || 0),
      signature_failures: (emu.signatureFailures || 0) - (before.signatureFailures || 0) };
    r.batching = pluginOptions.batching;
    await assertFleetLogClean(env);
    return r;
  } finally {
    await env.stop();
  }
}

// The batching run (plugin_opt_batching auto). NEEDS THE BATCHING PLUGIN (another branch): until
// it is merged the option is unknown (a broker given it refuses to start), and the run is
// reported as not run (not failed); any other failure fails the scenario.
async function batchingRun(n, options) {
  if (!(await pluginHasBatching())) return { skipped: 'this plugin has no plugin_opt_batching (the batching branch is not merged)' };
  return pluginRun(n, { ...options, pluginOptions: { ...options.pluginOptions, batching: 'auto' } });
}

// The `batching off` run: the option set when the plugin has it, left out when it has none (single
// calls are then all it does).
async function singleCallRun(n, options) {
  const r = await pluginRun(n, options);
  r.batching = (await pluginHasBatching()) ? 'off' : 'option left out (this plugin has none: single calls only)';
  return r;
}

// Memory: n devices connected, each having published its signed request; RSS `hold` seconds
// after. topic: the request topic (each request queued: the plugin paces at 1 call/s and the
// emulator answers in 2 s) or one the plugin ignores (the same bytes; what Mosquitto itself keeps).
// Two requests bootstrap first in both, so both have the platform connections curl keeps alive.
async function memoryRun(n, topic, hold) {
  const slow = { register_qps: 1, register_burst: 1, query_qps: 1, query_burst: 1 };
  const env = await startEnv({ pluginOptions: slow });
  try {
    // the plugin paces at 1/s; the account's quota above that, so that no call is throttled and retried
    await env.emu.setQuota({ RegisterDevice: 2, QueryDeviceDetail: 2 });
    await env.emu.setLatency(2000);
    const warm = await Promise.all([env.rr('warm-00001', { timeoutS: 15 }), env.rr('warm-00002', { timeoutS: 15 })]);
    if (!warm.every((w) => w.reply && w.reply.success)) throw new Error('S4 memory: the warm-up requests were not answered');
    const r = await loadgen(env, n, ['--no-probe', '--connect-rate', '2000', '--hold', String(hold), ...(topic ? ['--topic', topic] : [])]);
    if (r.sent !== n) throw new Error(`S4 memory: ${r.sent} of ${n} devices could send (${JSON.stringify(r.codes)})`);
    r.queued = r.sent - r.ok; // answered ones got their reply (at 1/s): no longer queued
    await env.assertLogClean();
    return r;
  } finally {
    await env.stop();
  }
}

const median = (xs) => pct(xs, 50);

// S8, scale-out: the same crowd of new devices through one broker alone, one broker with
// Redis, three brokers with Redis behind HAProxy (examples/multi-broker: the quota shared), and
// three behind HAProxy without Redis, the quota split statically (register_qps 9 each), and
// the same split with every device on one broker (direct: what an idle broker's share wastes).
// The emulator enforces 30 RegisterDevice/s; batching off, so that each device is one call.
async function scaleOut(n, { brokers = 1, redis = false, split = false, direct = false }) {
  const r = redis ? await h.startRedis() : null;
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { ops: 'ops-password' });
  const options = { batching: 'off', max_queue: 20000, metrics_interval: 1, operator: 'ops',
    ...(r ? { redis_url: r.url } : {}), ...(split ? { register_qps: 9 } : {}) };
  const common = { pluginOptions: options, extraConfig: `password_file ${pw}\nallow_anonymous true`, logTypes: LOG };
  const envs = [await h.startEnv({ emulatorProcess: true, emulator: { quota: QUOTA }, ...common })];
  while (envs.length < brokers) envs.push(await h.startEnv({ emulatorProcess: true, shareWith: envs[0], ...common }));
  const lb = brokers > 1 ? await h.startHaproxy(path.join(__dirname, '../examples/multi-broker/haproxy.cfg'), envs.map((e) => e.port)) : null;
  const metrics = () => Promise.all(envs.map((e) => h.readMetrics(e.port, ['-u', 'ops', '-P', 'ops-password'])));
  const sum = (ms, k) => ms.reduce((x, m) => x + (m[k] || 0), 0);
  try {
    await h.sleep(1500);
    await envs[0].emu.resetStats();
    const before = await metrics();
    const cpu0 = envs.map((e) => procCpuSeconds(e.broker.proc.pid));
    const res = await runJson(LOADGEN, ['-p', String(lb && !direct ? lb.port : envs[0].port), '-n', String(n), '--product-key', envs[0].productKey,
      '--product-secret-file', envs[0].productSecretFile, '--prefix', 'scale' + Math.random().toString(36).slice(2, 6), '--no-probe']);
    const cpu = envs.reduce((x, e, i) => x + procCpuSeconds(e.broker.proc.pid) - cpu0[i], 0);
    await h.sleep(1200);
    const after = await metrics();
    const emu = await envs[0].emu.stats();
    res.emulator = { calls: emu.byAction, throttled: emu.throttled };
    res.register_per_s = (emu.byAction.RegisterDevice || 0) / res.seconds;
    res.cpu_ms_per_bootstrap = (cpu * 1000) / Math.max(1, res.ok);
    if (r) {
      res.redis_round_trips_per_bootstrap = (sum(after, 'shared/round_trips') - sum(before, 'shared/round_trips')) / Math.max(1, res.ok);
      res.redis_commands_per_bootstrap = (sum(after, 'shared/commands') - sum(before, 'shared/commands')) / Math.max(1, res.ok);
    }
    return res;
  } finally {
    if (lb) await lb.stop();
    for (const e of envs.slice(1).reverse()) await e.stop();
    await envs[0].stop();
    if (r) await r.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const scenarios = {
  async S1() {
    const n = N.s1;
    const plugin = await pluginRun(n, { pluginOptions: { ...NO_QUOTA, max_inflight: 256 } });
    // the same with replies in the clear: what sealing costs per bootstrap, end to end
    const clear = await pluginRun(n, { pluginOptions: { ...NO_QUOTA, max_inflight: 256, reply_encryption: 'off' } });
    const ceil = await ceiling(n);
    const seed = await seedBaseline(n, Math.min(n, 256));
    const [alone] = await emulatorAlone(n, Math.min(n, 256));
    return {
      plugin, unsealed: clear, ceiling: ceil, seed, emulator_alone: alone,
      sealing_cpu_ms_per_bootstrap: plugin.cpu_ms_per_bootstrap - clear.cpu_ms_per_bootstrap,
      ratios: {
        // the plugin's broker CPU against the ceiling's broker + responder CPU: both do the whole job
        broker_cpu_per_bootstrap_vs_ceiling_broker_plus_responder: plugin.cpu_ms_per_bootstrap / ceil.cpu_ms_per_request,
        broker_cpu_per_bootstrap_vs_ceiling_broker_only: plugin.cpu_ms_per_bootstrap / ceil.cpu_ms_per_request_broker,
        devices_per_s_vs_seed: plugin.devices_per_s / seed.per_s,
        devices_per_s_vs_ceiling: plugin.devices_per_s / ceil.devices_per_s,
        devices_per_s_vs_emulator_alone: plugin.devices_per_s / alone.per_s,
      },
      ok: plugin.ok === n && clear.ok === n && ceil.ok === n && seed.ok === n && alone.ok === n,
    };
  },
  async S2() {
    const n = N.s2;
    const plugin = await pluginRun(n, { latencyMs: 100, quota: QUOTA });
    return { plugin, register_share_of_quota: plugin.register_per_s / 30, ok: plugin.ok === n };
  },
  async S3() {
    const n = N.s3;
    const auto = await pluginRun(n, { latencyMs: 100, quota: QUOTA, preRegister: 'old' });
    const regFirst = QUICK ? null : await pluginRun(Math.min(n, 600), { latencyMs: 100, quota: QUOTA, preRegister: 'old', pluginOptions: { strategy: 'register_first' } });
    return { auto, register_first: regFirst, query_share_of_quota: auto.query_per_s / 50, ok: auto.ok === n && (!regFirst || regFirst.ok === regFirst.devices) };
  },
  async S4() {
    // (a) a new client's CONNACK and a PINGREQ round trip, idle (before any device connects) and
    // while n requests wait on a 2 s platform; the drain rate
    const n = N.s4;
    const plugin = await pluginRun(n, { latencyMs: 2000, pluginOptions: { ...NO_QUOTA }, loadgenArgs: ['--idle-probes', String(N.idleProbes)] });
    // (b) broker bytes per queued request: RSS with N.s4mem requests queued minus RSS with the same
    // clients having published the same bytes on a topic the plugin ignores, over the queued count;
    // N.s4reps pairs, each pair one after the other
    const hold = N.s4hold;
    const pairs = [];
    for (let i = 0; i < N.s4reps; i++) {
      const queued = await memoryRun(N.s4mem, null, hold);
      const ignored = await memoryRun(N.s4mem, 'bench/ignored', hold);
      const perQueued = ((queued.broker.rss_kib_after - ignored.broker.rss_kib_after) * 1024) / queued.queued;
      // cross-check: each run's own growth over the publishes, then the difference
      const growth = (r) => r.broker.rss_kib_after - r.broker.rss_kib_before;
      pairs.push({ queued, ignored, bytes_per_queued_request: perQueued,
        bytes_per_queued_request_from_growth: ((growth(queued) - growth(ignored)) * 1024) / queued.queued,
        // what a connected client costs Mosquitto (and the plugin's per-connection state, if any)
        mosquitto_bytes_per_client: ((ignored.broker.rss_kib_before - ignored.broker.rss_kib_start) * 1024) / N.s4mem });
    }
    const per = pairs.map((p) => p.bytes_per_queued_request);
    const idle = plugin.probe.idle, storm = plugin.probe.storm;
    return {
      plugin, memory: { clients: N.s4mem, hold_s: hold, pairs: pairs.map(({ queued, ignored, ...x }) => ({ ...x,
        queued: queued.queued, rss_kib: { queued: queued.broker.rss_kib_after, ignored: ignored.broker.rss_kib_after,
          queued_connected: queued.broker.rss_kib_before, ignored_connected: ignored.broker.rss_kib_before,
          queued_start: queued.broker.rss_kib_start, ignored_start: ignored.broker.rss_kib_start } })),
      broker_bytes_per_queued_request: median(per), min: Math.min(...per), max: Math.max(...per) },
      connack_idle: idle, connack_storm: storm,
      connack_bound_ms: 2 * idle.connack_ms.p99 + 5,
      ok: plugin.ok === n && pairs.every((p) => p.queued.queued > 0.9 * N.s4mem && p.ignored.ok === 0),
    };
  },
  async S5() {
    // One device at a time at several platform latencies, with and without wakeup_port. The
    // platform's own round trip at each latency (the same HTTPS, kept alive) is subtracted.
    // The plugin keeps its default pacing (RegisterDevice 30/s); a device asks 40 ms after the one
    // before it was answered, so the pacing never holds one (S2 measures the pacing).
    const n = N.s5;
    const platform = await emulatorAlone(n, 1, N.s5lat);
    const modes = {};
    for (const [name, pluginOptions] of [['tick', {}], ['wakeup', { wakeup_port: '$PORT' }]]) {
      const env = await startEnv({ pluginOptions });
      try {
        modes[name] = [];
        for (const latencyMs of N.s5lat) modes[name].push(await measure(env, n, { latencyMs, loadgenArgs: ['--sequential', '--gap-ms', String(S5_GAP_MS), '--no-probe'] }));
        await env.assertLogClean();
      } finally {
        await env.stop();
      }
    }
    const points = N.s5lat.map((latencyMs, i) => {
      const base = platform[i].latency_ms;
      // the same quantile of each minus the platform's; a p99 only when both have enough samples
      const added = (r) => ({ samples: Math.min(r.latency_ms.samples, base.samples), p50: r.latency_ms.p50 - base.p50,
        p99: Math.min(r.latency_ms.samples, base.samples) >= MIN_P99_SAMPLES ? r.latency_ms.p99 - base.p99 : null });
      return { latency_ms: latencyMs, platform_round_trip_ms: base,
        // on 2.0 a ready reply waits for the next idle tick: TICK_MS after the request's arrival
        tick_model_added_ms: TICK_MS - (base.p50 % TICK_MS),
        tick: { round_trip_ms: modes.tick[i].latency_ms, added_ms: added(modes.tick[i]), codes: modes.tick[i].codes, ok: modes.tick[i].ok },
        wakeup: { round_trip_ms: modes.wakeup[i].latency_ms, added_ms: added(modes.wakeup[i]), codes: modes.wakeup[i].codes, ok: modes.wakeup[i].ok } };
    });
    return { samples_per_point: n, points, ok: points.every((p) => p.tick.ok === n && p.wakeup.ok === n) };
  },
  async S6() {
    // N.s6 existing, unactivated devices ask at once; the emulator enforces every documented quota.
    const n = N.s6;
    const common = { latencyMs: 100, quota: DOCUMENTED_QPS, preRegister: 'old', loadgenArgs: ['--no-probe', '--timeout', String(Math.ceil(n / 25) + 120)] };
    const off = await singleCallRun(n, common);
    const auto = await batchingRun(n, common); // needs the batching plugin
    const seed = await seedBaseline(n, Math.min(n, 256), { latencyMs: 100, quota: DOCUMENTED_QPS, preRegister: 'old', retryMs: 1000 });
    return { off, auto, seed, devices: n,
      ratio_auto_vs_off: auto.skipped ? null : auto.devices_per_s / off.devices_per_s,
      ok: off.ok === n && seed.ok === n && (auto.skipped || auto.ok === n) };
  },
  async S7() {
    // N.s7 new devices ask at once; batch stages take 2 s each; every documented quota enforced.
    // batching off and the seed (both bound by RegisterDevice's 30/s) run with N.s7base devices in
    // the full run (3 000: about 100 s each instead of 6 min), all of them answered; the table says so.
    const n = N.s7, nBase = N.s7base;
    const emulator = { checkDurationMs: N.s7stageMs, createDurationMs: N.s7stageMs };
    const common = (k) => ({ latencyMs: 100, quota: DOCUMENTED_QPS, emulator, loadgenArgs: ['--no-probe', '--timeout', String(Math.ceil(k / 15) + 120)] });
    const off = await singleCallRun(nBase, common(nBase));
    const auto = await batchingRun(n, common(n)); // needs the batching plugin
    const seed = await seedBaseline(nBase, Math.min(nBase, 256), { latencyMs: 100, quota: DOCUMENTED_QPS, emulator, retryMs: 1000 });
    return { off, auto, seed, devices: n, devices_off_and_seed: nBase,
      ratio_auto_vs_off: auto.skipped ? null : auto.devices_per_s / off.devices_per_s,
      ok: off.ok === nBase && seed.ok === nBase && (auto.skipped || auto.ok === n) };
  },
  async S9() {
    // a fleet of new devices switched on within S9.arrivalS; batch stages of S9.checkS + S9.createS
    // (± S9.jitter); every documented quota; platform 100 ms. Devices connect, ask, follow
    // retryAfter, disconnect and come back (bench/fleet.js), at most S9.concurrency connections at once.
    const emulator = { checkDurationMs: S9.checkS * 1000, createDurationMs: S9.createS * 1000, stageJitter: S9.jitter };
    const out = { devices: S9.devices, stage_check_s: S9.checkS, stage_create_s: S9.createS, stage_jitter: S9.jitter, arrival_s: S9.arrivalS, concurrency: S9.concurrency };
    const base = Math.min(S9.base, S9.devices);
    out.devices_off_and_seed = base;
    for (const mode of S9.modes) {
      if (mode === 'seed') {
        // the seed function (pop-core over HTTPS): each device asks once and, refused (a throttled
        // call answers 502), again a second later; no retryAfter to follow
        const r = await seedBaseline(base, Math.min(base, 256), { latencyMs: 100, quota: DOCUMENTED_QPS, emulator, retryMs: 1000, timeoutS: Math.ceil(base / 25) + 600 });
        out.seed = { ...r, devices: base, served: r.ok, last_served_s: r.seconds, requests_per_device: r.attempts / Math.max(1, base) };
      } else if (mode === 'auto' && !(await pluginHasBatching())) {
        out[mode] = { skipped: 'this plugin has no plugin_opt_batching' };
      } else {
        out[mode] = await fleetRun(mode === 'auto' ? S9.devices : base, { pluginOptions: { batching: mode }, emulator });
      }
      const x = out[mode];
      // a run of fewer devices than the fleet: the fleet's time at the rate it kept (quota-bound, linear)
      if (!x.skipped && x.devices < S9.devices) x.fleet_last_served_s_scaled = x.last_served_s * S9.devices / x.devices;
    }
    out.ok = S9.modes.every((m) => out[m].skipped || out[m].served === out[m].devices);
    const fleetTime = (x) => (x && !x.skipped ? x.fleet_last_served_s_scaled || x.last_served_s : null);
    if (fleetTime(out.off) && fleetTime(out.auto)) out.ratio_auto_vs_off = fleetTime(out.off) / fleetTime(out.auto);
    if (fleetTime(out.seed) && fleetTime(out.auto)) out.ratio_auto_vs_seed = fleetTime(out.seed) / fleetTime(out.auto);
    return out;
  },
  async S8() {
    const n = N.s8;
    const alone = await scaleOut(n, {});
    const one = await scaleOut(n, { redis: true });
    const three = await scaleOut(n, { brokers: 3, redis: true });
    const split = await scaleOut(n, { brokers: 3, split: true });
    const splitOne = await scaleOut(n, { brokers: 3, split: true, direct: true });
    return { alone, one_with_redis: one, three_with_redis: three, three_split: split, three_split_all_to_one: splitOne,
      ok: [alone, one, three, split, splitOne].every((x) => x.ok === n) };
  },
};

// ---- the table ----

function f(x, d = 1) { return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '–'; }
function pc(x) { return typeof x === 'number' ? `${Math.round(x * 100)}%` : '–'; }
// p50 / p99, or p50 / max with n when there are too few samples for a p99
function lat(l) {
  if (!l) return '–';
  if (l.samples >= MIN_P99_SAMPLES) return `${f(l.p50)} / ${f(l.p99)}`;
  return `${f(l.p50)} / max ${f(l.max)} (n=${l.samples} < ${MIN_P99_SAMPLES}: no p99)`;
}
function codes(c) { return c ? Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ') : '–'; }
function calls(c) { return Object.entries(c || {}).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'; }
function cores(cpuS, seconds) { return f(cpuS / seconds, 2); }
function cpuBound(r, seconds) {
  return `CPU: the 2 cores ${pc(r.machine_cpu_busy)} busy (whole host)` + (r.emulator_cpu_s !== undefined ? `, emulator ${cores(r.emulator_cpu_s, seconds)} core` : '');
}

function table(results) {
  const rows = [];
  const row = (scenario, devices, samples, rate, latency, cost, bound, replies) => rows.push(`| ${[scenario, devices, samples, rate, latency, cost, bound, replies].join(' | ')} |`);
  const r = results;
  const notes = [];
  if (r.S1 && r.S1.plugin) {
    const s = r.S1;
    const p = s.plugin, c = s.ceiling;
    row('S1 plugin', p.devices, p.latency_ms.samples, f(p.devices_per_s), lat(p.latency_ms),
      `**${f(p.cpu_ms_per_bootstrap, 3)} ms broker CPU** per bootstrap = ${f(s.ratios.broker_cpu_per_bootstrap_vs_ceiling_broker_plus_responder, 2)}× the ceiling's broker + responder (${f(s.ratios.broker_cpu_per_bootstrap_vs_ceiling_broker_only, 2)}× its broker alone); ${p.emulator.connections} platform connections`,
      cpuBound(p, p.seconds), codes(p.codes));
    row('S1 plugin, `reply_encryption off`', s.unsealed.devices, s.unsealed.latency_ms.samples, f(s.unsealed.devices_per_s), lat(s.unsealed.latency_ms),
      `${f(s.unsealed.cpu_ms_per_bootstrap, 3)} ms broker CPU (sealing: ${f(s.sealing_cpu_ms_per_bootstrap * 1000, 0)} µs)`, cpuBound(s.unsealed, s.unsealed.seconds), codes(s.unsealed.codes));
    row('S1 baseline: broker ceiling (responder client)', c.devices, c.latency_ms.samples, f(c.devices_per_s), lat(c.latency_ms),
      `**${f(c.cpu_ms_per_request, 3)} ms broker + responder CPU** per request/response (broker ${f(c.cpu_ms_per_request_broker, 3)}, responder ${f(c.cpu_ms_per_request_responder, 3)}); no platform call`,
      cpuBound(c, c.seconds), codes(c.codes));
    row('S1 baseline: seed (pop-core function)', s.seed.requests, s.seed.latency_ms.samples, f(s.seed.per_s), lat(s.seed.latency_ms),
      `${f(s.seed.cpu_ms_per_bootstrap, 3)} ms function CPU per bootstrap; ${s.seed.emulator.connections} platform connections`,
      `CPU: function ${cores(s.seed.function_cpu_s, s.seed.seconds)} core (one Node.js process), emulator ${cores(s.seed.emulator_cpu_s, s.seed.seconds)} core`, `ok ${s.seed.ok}`);
    row('S1 baseline: emulator alone (per call)', s.emulator_alone.requests, s.emulator_alone.latency_ms.samples, f(s.emulator_alone.per_s), lat(s.emulator_alone.latency_ms),
      '–', `CPU: emulator ${cores(s.emulator_alone.emulator_cpu_s, s.emulator_alone.seconds)} core (one Node.js process)`, `ok ${s.emulator_alone.ok}`);
    notes.push('S1: every device asks at once; platform 0 ms, no quota, the plugin\'s pacing off, `max_inflight 256`; the seed function and the emulator-alone driver at 256 requests at a time. '
      + 'CPU: the plugin does the platform call, JSON, signing and sealing inside the broker; the ceiling\'s broker only routes and its responder client answers, so the plugin\'s broker CPU is compared with the ceiling\'s broker + responder CPU (read from /proc over the same window, 10 ms clock ticks).');
  }
  if (r.S2 && r.S2.plugin) {
    const p = r.S2.plugin;
    row('S2 new devices, quota 30/50', p.devices, p.latency_ms.samples, f(p.devices_per_s), lat(p.latency_ms),
      `RegisterDevice ${f(p.register_per_s)}/s, throttled ${p.emulator.throttled}`, `quota: RegisterDevice 30/s (${pc(p.register_per_s / 30)} used)`, codes(p.codes));
    notes.push('S2, S3: every device asks at once; platform 100 ms; the emulator enforces RegisterDevice 30/s and QueryDeviceDetail 50/s; latency is the queue the fleet waits in.');
  }
  if (r.S3 && r.S3.auto) {
    const a = r.S3.auto, b = r.S3.register_first;
    row('S3 existing devices, `strategy auto`', a.devices, a.latency_ms.samples, f(a.devices_per_s), lat(a.latency_ms),
      `QueryDeviceDetail ${f(a.query_per_s)}/s, RegisterDevice ${f(a.register_per_s)}/s, throttled ${a.emulator.throttled}`, `quota: QueryDeviceDetail 50/s (${pc(a.query_per_s / 50)} used)`, codes(a.codes));
    if (b) row('S3 existing devices, `register_first`', b.devices, b.latency_ms.samples, f(b.devices_per_s), lat(b.latency_ms),
      `QueryDeviceDetail ${f(b.query_per_s)}/s, RegisterDevice ${f(b.register_per_s)}/s`, `quota: RegisterDevice 30/s (${pc(b.register_per_s / 30)} used; a Register and a Query per device)`, codes(b.codes));
  }
  if (r.S4 && r.S4.plugin) {
    const s = r.S4, p = s.plugin, m = s.memory;
    const probe = (x) => (x.samples >= MIN_P99_SAMPLES ? `p99 ${f(x.connack_ms.p99, 2)} ms (n=${x.samples})` : `max ${f(x.connack_ms.max, 2)} ms (n=${x.samples} < ${MIN_P99_SAMPLES}: no p99)`);
    row(`S4 2 s platform, ${p.devices} requests waiting`, p.devices, p.latency_ms.samples, f(p.devices_per_s), lat(p.latency_ms),
      `probe CONNACK idle ${probe(s.connack_idle)} → while waiting ${probe(s.connack_storm)}; PINGREQ p50 ${f(s.connack_storm.ping_ms.p50, 2)} ms`,
      'devices/s: platform latency, 2 s × `max_inflight` 64 = 32/s; CONNACK: the broker thread (it never waits on the platform)', codes(p.codes));
    const per = m.pairs.map((x) => f(x.bytes_per_queued_request, 0)).join(', ');
    row(`S4 broker bytes per queued request`, m.clients, `${m.pairs.length} pair${m.pairs.length > 1 ? 's' : ''} of runs`, '–', '–',
      `**${f(m.broker_bytes_per_queued_request, 0)} B** (median; runs: ${per}; spread ${f(m.max - m.min, 0)} B); for comparison a connected client costs the broker ${f(median(m.pairs.map((x) => x.mosquitto_bytes_per_client)), 0)} B`,
      'memory: what the plugin keeps per queued request (job, route, replay record, allocator overhead)', `${m.pairs.map((x) => x.queued).join(', ')} queued`);
    notes.push(`S4: the probe (a new client's CONNACK and a PINGREQ round trip every 50 ms) runs idle before any device connects, then while the requests wait. Memory: ${m.clients} devices connect; each publishes its signed request, the plugin pacing at 1 call/s against a 2 s platform so that they stay queued; RSS ${m.hold_s} s later, minus the RSS of the same run with the same ${m.clients} devices publishing the same bytes on a topic the plugin ignores, over the requests still queued. Two requests bootstrap first in both runs (the kept-alive platform connections count in both).`);
  }
  if (r.S5 && r.S5.points) {
    for (const pt of r.S5.points) {
      const pl = pt.platform_round_trip_ms;
      const added = (a) => (a.p99 === null ? `p50 ${f(a.p50)} (n=${a.samples} < ${MIN_P99_SAMPLES}: no p99)` : `${f(a.p50)} / ${f(a.p99)}`);
      row(`S5 ${pt.latency_ms} ms platform, idle tick`, r.S5.samples_per_point, pt.tick.round_trip_ms.samples, '–', lat(pt.tick.round_trip_ms),
        `platform alone ${lat(pl)}; **plugin adds ${added(pt.tick.added_ms)}** (tick model: ${TICK_MS} − (${f(pl.p50)} mod ${TICK_MS}) = ${f(pt.tick_model_added_ms)})`,
        `tick: the reply waits for 2.0's next idle tick, ${TICK_MS} ms after the request`, codes(pt.tick.codes));
      row(`S5 ${pt.latency_ms} ms platform, \`wakeup_port\``, r.S5.samples_per_point, pt.wakeup.round_trip_ms.samples, '–', lat(pt.wakeup.round_trip_ms),
        `**plugin adds ${added(pt.wakeup.added_ms)}**`, 'platform latency (the reply goes out when the answer is in)', codes(pt.wakeup.codes));
    }
    notes.push(`S5: one device at a time, each asking ${S5_GAP_MS} ms after the previous one was answered (the plugin's default pacing, 30/s, then never holds one); the plugin's added latency is each quantile of the device's round trip minus the same quantile of the platform's own round trip (signed calls over the same HTTPS, kept alive, one at a time).`);
  }
  const quotaScenario = (key, { offBound, seedBound, autoBound, note }) => {
    const s = r[key];
    if (!s || !s.off) return;
    const sized = (k) => (k !== s.devices ? ` (${k} devices)` : '');
    const run = (name, x, bound) => {
      if (x.skipped) return row(`${key} ${name}`, s.devices, '–', '–', '–', `not run: ${x.skipped}`, bound, '–');
      row(`${key} ${name}${sized(x.devices)}`, x.devices, x.latency_ms.samples, f(x.devices_per_s), lat(x.latency_ms),
        `calls: ${calls(x.emulator.calls)}; throttled ${x.emulator.throttled}${x.emulator.throttled ? ` (${calls(x.emulator.throttled_by || {})})` : ""}; signature errors ${x.emulator.signature_failures}, strict refusals ${x.emulator.strict_refusals}`, bound, codes(x.codes));
    };
    run('plugin `batching off`' + (s.off.batching && s.off.batching !== 'off' ? ' (option left out: this plugin has none)' : ''), s.off, offBound);
    run('plugin `batching auto`', s.auto, autoBound);
    const d = s.seed;
    row(`${key} seed (pop-core function)${sized(d.requests)}`, d.requests, d.latency_ms.samples, f(d.per_s), lat(d.latency_ms),
      `calls: ${calls(d.emulator.calls)}; throttled ${d.emulator.throttled}; ${d.attempts} device requests`, seedBound, `ok ${d.ok}`);
    if (s.ratio_auto_vs_off !== null) rows.push(`| ${key} auto / off | | | **${f(s.ratio_auto_vs_off, 1)}×** | | | | |`);
    notes.push(note);
  };
  const quotas = Object.entries(DOCUMENTED_QPS).map(([k, v]) => `${k} ${v}`).join(', ');
  quotaScenario('S6', {
    offBound: 'quota: QueryDeviceDetail 50/s', seedBound: 'quota: QueryDeviceDetail 50/s (each device tries RegisterDevice first, 30/s)', autoBound: 'quota: BatchQueryDeviceDetail 5/s × 100 names',
    note: `S6: existing, unactivated devices (registered beforehand) all ask at once; platform 100 ms; the emulator enforces every documented quota (${quotas} per second). The seed function is driven 256 requests at a time; a device whose request failed (the function answers 502 when a call is throttled) asks again 1 s later; its latency counts from the common start, as the plugin's devices'. \`batching off\` is set when the plugin has the option (its default is \`auto\`), left out when it has none; \`batching auto\` needs the batching plugin.` });
  quotaScenario('S7', {
    offBound: 'quota: RegisterDevice 30/s', seedBound: 'quota: RegisterDevice 30/s', autoBound: `batch stages (${N.s7stageMs / 1000} s check + ${N.s7stageMs / 1000} s create per apply); BatchCheckDeviceNames 10/s`,
    note: `S7: new devices all ask at once; platform 100 ms, batch stages ${N.s7stageMs / 1000} s (check) + ${N.s7stageMs / 1000} s (create); the same quotas. ${r.S7 && r.S7.devices_off_and_seed !== r.S7.devices ? `\`batching off\` and the seed run with ${r.S7.devices_off_and_seed} devices, not ${r.S7.devices}: both are bound by RegisterDevice's 30/s (${r.S7.devices} would take 6 min each), every one of the ${r.S7.devices_off_and_seed} answered, devices/s over the whole run; their latencies are those of a ${r.S7.devices_off_and_seed}-device queue.` : ''}` });
  if (r.S8) {
    for (const [label, x] of [['one broker, no Redis', r.S8.alone], ['one broker, Redis', r.S8.one_with_redis],
      ['three brokers, one Redis, HAProxy', r.S8.three_with_redis], ['three brokers, quota split (9/s each), HAProxy', r.S8.three_split],
      ['three brokers, quota split (9/s each), all to one', r.S8.three_split_all_to_one]]) {
      const redis = x.redis_round_trips_per_bootstrap === undefined ? '' : `; Redis ${f(x.redis_round_trips_per_bootstrap, 2)} round trips, ${f(x.redis_commands_per_bootstrap, 2)} commands per bootstrap`;
      row(`S8 ${label}, quota 30/s`, x.devices, x.latency_ms.samples, f(x.devices_per_s), lat(x.latency_ms),
        `RegisterDevice ${f(x.register_per_s)}/s, throttled ${x.emulator.throttled}; broker CPU ${f(x.cpu_ms_per_bootstrap, 3)} ms per bootstrap${redis}`,
        'quota: RegisterDevice 30/s, shared through Redis or split', codes(x.codes));
    }
    notes.push('S8: new devices through one broker or three behind HAProxy, one emulator enforcing 30 RegisterDevice/s, `batching off` (one call per device); plain HTTP to the emulator (this scenario compares brokers, not TLS costs).');
  }
  if (r.S9 && (r.S9.off || r.S9.auto || r.S9.seed)) {
    const s = r.S9;
    const scaled = (x) => (x.fleet_last_served_s_scaled ? `; ${s.devices} at this rate: ${f(x.fleet_last_served_s_scaled / 60, 1)} min` : '');
    if (s.seed && !s.seed.error) {
      const x = s.seed;
      row('S9 baseline: seed (pop-core function)', x.devices, x.latency_ms.samples, `${f(x.per_s)} (all served at ${f(x.seconds, 0)} s${scaled(x)})`, lat(x.latency_ms),
        `${f(x.requests_per_device, 2)} requests per device; throttled ${x.emulator.throttled}; calls: ${calls(x.emulator.calls)}`, 'quota: RegisterDevice 30/s', '–');
    }
    for (const mode of ['off', 'auto']) {
      const x = s[mode];
      if (!x) continue;
      if (x.skipped || x.error) { row(`S9 plugin \`batching ${mode}\``, s.devices, '–', '–', '–', `not run: ${x.skipped || x.error}`, '–', '–'); continue; }
      const t = x.time_to_triple_ms;
      row(`S9 plugin \`batching ${mode}\``, x.devices, t.samples, `${f(x.devices_per_s)} (all served at ${f(x.last_served_s, 0)} s${scaled(x)})`,
        t.samples >= MIN_P99_SAMPLES ? `${f(t.p50 / 1000)} s / ${f(t.p99 / 1000)} s` : `${f(t.p50 / 1000)} s / max ${f(t.max / 1000)} s (n=${t.samples})`,
        `**${f(x.requests_per_device, 2)} requests per device** (max ${x.attempts.max}); throttled ${x.emulator.throttled}${x.emulator.throttled ? ` (${calls(x.emulator.throttled_by)})` : ''}; calls: ${calls(x.emulator.calls)}; broker RSS +${f(x.broker.rss_growth_kib / 1024)} MB (peak ${f(x.broker.rss_kib_peak / 1024)} MB), CPU ${f(x.broker.cpu_cores, 2)} core`,
        mode === 'off' ? 'quota: RegisterDevice 30/s' : `batch stages ${s.stage_check_s} s + ${s.stage_create_s} s (± ${pc(s.stage_jitter)}), then the lookups (BatchQueryDeviceDetail 500 devices/s)`, codes(x.codes));
    }
    if (s.ratio_auto_vs_off) rows.push(`| S9 auto / off (time to the last triple of ${s.devices}) | | | **${f(s.ratio_auto_vs_off, 2)}×** | | | | |`);
    if (s.ratio_auto_vs_seed) rows.push(`| S9 auto / seed (time to the last triple of ${s.devices}) | | | **${f(s.ratio_auto_vs_seed, 2)}×** | | | | |`);
    notes.push(`S9: ${s.devices} new devices switched on at random moments within ${s.arrival_s} s (bench/fleet.js): each connects, asks, disconnects and comes back as \`retryAfter\` says, with a new random, from one of many loopback addresses, at most ${s.concurrency} connections open at once; platform 100 ms, batch stages ${s.stage_check_s} s (check) and ${s.stage_create_s} s (create), ± ${pc(s.stage_jitter)}; every documented quota. Time to triple is from a device's first request; requests per device counts every request it sent. \`batching off\` and the seed function are bound by RegisterDevice's 30/s: they run ${s.devices_off_and_seed} devices, and the fleet's time is scaled from their rate (\`--s9-base\`).`);
  }
  const head = ['| scenario | devices | samples | devices/s | latency p50 / p99 ms | cost / rates | bound by | replies |', '|---|---|---|---|---|---|---|---|'];
  const method = `Method: the platform (the emulator) over HTTPS, connections kept alive, for the plugin, the seed function and the emulator-alone driver; the devices' own hop (MQTT to the broker, HTTP to the seed function) is plain TCP on loopback for all. A p99 is given only from ${MIN_P99_SAMPLES} samples or more, else the maximum and n. "samples": the latencies a percentile comes from.`;
  const quick = QUICK ? ['**--quick**: every scenario small, a smoke test that each tool and baseline produces its result; its timings, CPU (10 ms clock ticks) and memory figures are not measurements.', ''] : [];
  return [...quick, ...head, ...rows, '', method, '', ...notes.map((n) => '- ' + n.trim())].join('\n');
}

(async () => {
  const results = { machine: { cpus: os.cpus().length, cpu: os.cpus()[0].model, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), quick: QUICK, date: new Date().toISOString(),
    method: 'HTTPS to the platform, kept alive; p99 only from >= 200 samples; single platform calls (batching off) but in the batching auto runs' } };
  const failed = [];
  for (const [name, fn] of Object.entries(scenarios)) {
    if (ONLY && !ONLY.includes(name)) continue;
    const t0 = Date.now();
    process.stderr.write(`${name}... `);
    try {
      results[name] = await fn();
      if (!results[name].ok) failed.push(name);
    } catch (e) {
      results[name] = { error: e.message };
      failed.push(name);
    }
    process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)} s${results[name].ok ? '' : ' FAILED' + (results[name].error ? ': ' + results[name].error.split('\n')[0] : '')}\n`);
  }
  fs.mkdirSync(OUT, { recursive: true });
  const md = table(results);
  const base = QUICK ? 'quick' : ONLY ? `only-${ONLY.join('-')}` : 'full';
  fs.writeFileSync(path.join(OUT, base + '.json'), JSON.stringify(results, null, 1));
  fs.writeFileSync(path.join(OUT, base + '.md'), md + '\n');
  console.log(md);
  if (results.S1 && results.S1.ratios) console.log('\nS1 ratios: ' + JSON.stringify(results.S1.ratios));
  if (failed.length) console.log(`\nscenarios without a complete result: ${failed.join(', ')}`);
  process.exit(CHECK && failed.length ? 1 : 0);
})();
