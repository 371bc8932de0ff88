'use strict';
// Runs every benchmark scenario with its baselines on this machine and writes a results table.
//
//   node bench/run.js [--quick] [--only S1,S4] [--out DIR] [--check]
//
// Needs BOOTSTRAP_PLUGIN (the built plugin) and BOOTSTRAP_LOADGEN (bench/loadgen), both set by
// scripts/bench. --quick shrinks every scenario to finish within a minute; --check fails when a
// scenario did not produce its result (every device answered, the tools worked). Timings are
// reported, never asserted.
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const h = require('../tests/integration/lib/harness');
const { sign, canonicalQuery } = require('../tests/emulator/emulator.js');

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const CHECK = args.includes('--check');
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;
const OUT = args.includes('--out') ? args[args.indexOf('--out') + 1] : path.join(__dirname, 'results');
const LOADGEN = process.env.BOOTSTRAP_LOADGEN || path.join(path.dirname(process.env.BOOTSTRAP_PLUGIN || ''), 'loadgen');
const QUOTA = { RegisterDevice: 30, QueryDeviceDetail: 50 };
const NO_QUOTA = { register_qps: 10000, register_burst: 10000, query_qps: 10000, query_burst: 10000 };

// the example configuration's log level: benchmarks measure the broker as it is run
const LOG = ['error', 'warning', 'notice', 'information'];

const N = QUICK
  ? { s1: 150, s2: 40, s3: 60, s4: 100, s5: 10, s8: 60 }
  : { s1: 2000, s2: 3000, s3: 3000, s4: 1000, s5: 100, s8: 1000 };

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
  return (Number(f[11]) + Number(f[12])) / 100;
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
}

// HTTP at a fixed concurrency: n POSTs built by makeBody(i), through keep-alive connections.
async function httpStorm(port, n, concurrency, makeBody) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const lat = [];
  let ok = 0, next = 0;
  const t0 = Date.now();
  async function one() {
    while (next < n) {
      const i = next++;
      const body = makeBody(i);
      const s = process.hrtime.bigint();
      const res = await new Promise((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent,
          headers: { 'Content-Type': body.type, 'Content-Length': Buffer.byteLength(body.text) } }, (r) => {
          let d = '';
          r.on('data', (x) => { d += x; });
          r.on('end', () => resolve({ status: r.statusCode, d }));
        });
        req.on('error', () => resolve({ status: 0 }));
        req.end(body.text);
      });
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      if (res.status === 200 && /"(success|Success)":true/.test(res.d)) ok++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, one));
  const seconds = (Date.now() - t0) / 1000;
  agent.destroy();
  return { requests: n, ok, seconds, per_s: ok / seconds, latency_ms: { p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: Math.max(...lat) } };
}

// The seed architecture: the pop-core HTTP function against the same emulator.
async function seedBaseline(n, concurrency, latencyMs) {
  const env = await h.startEnv({ emulatorProcess: true, noPlugin: true, logTypes: LOG });
  let fn;
  try {
    await env.emu.setLatency(latencyMs);
    const port = await h.freePort();
    fn = spawn(process.execPath, [path.join(__dirname, 'seed/function.js'), String(port), `http://127.0.0.1:${env.emuPort}/`, env.productKey],
      { env: { ...process.env, ALIBABA_CLOUD_ACCESS_KEY_ID: env.accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: env.accessKeySecret }, stdio: ['ignore', 'pipe', 'inherit'] });
    h.live.add(fn);
    await new Promise((resolve) => fn.stdout.on('data', (d) => { if (String(d).includes('listening')) resolve(); }));
    const cpu0 = procCpuSeconds(fn.pid);
    const r = await httpStorm(port, n, concurrency, (i) => ({ type: 'application/json', text: JSON.stringify({ deviceId: `seed-${String(i).padStart(5, '0')}` }) }));
    r.function_cpu_s = procCpuSeconds(fn.pid) - cpu0;
    r.cpu_ms_per_bootstrap = (r.function_cpu_s * 1000) / Math.max(1, r.ok);
    r.emulator = (await env.emu.stats()).byAction;
    return r;
  } finally {
    if (fn) fn.kill('SIGTERM');
    await env.stop();
  }
}

// The emulator alone, signed RegisterDevice calls at the same concurrency: its own ceiling.
async function emulatorAlone(n, concurrency, latencyMs) {
  const env = await h.startEnv({ emulatorProcess: true, noPlugin: true, logTypes: LOG });
  try {
    await env.emu.setLatency(latencyMs);
    return await httpStorm(env.emuPort, n, concurrency, (i) => {
      const p = { Action: 'RegisterDevice', Format: 'JSON', Version: '2018-01-20', AccessKeyId: env.accessKeyId, SignatureMethod: 'HMAC-SHA1',
        SignatureVersion: '1.0', SignatureNonce: `${process.pid}-${Date.now()}-${i}-${Math.random()}`, Timestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        ProductKey: env.productKey, DeviceName: `alone-${String(i).padStart(5, '0')}` };
      return { type: 'application/x-www-form-urlencoded', text: canonicalQuery(p) + '&Signature=' + encodeURIComponent(sign('POST', p, env.accessKeySecret)) };
    });
  } finally {
    await env.stop();
  }
}

// Broker ceiling: no plugin, a responder client answers every request on the reply topic.
async function ceiling(n) {
  const env = await h.startEnv({ emulatorProcess: true, noPlugin: true, requestAuth: 'none', logTypes: LOG });
  const responder = spawn(LOADGEN, ['-p', String(env.port), '-n', '1', '--responder'], { stdio: ['ignore', 'pipe', 'inherit'] });
  h.live.add(responder);
  try {
    await new Promise((resolve) => responder.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); }));
    const r = await loadgen(env, n);
    r.cpu_ms_per_request = (r.broker.cpu_s * 1000) / Math.max(1, r.ok);
    return r;
  } finally {
    responder.kill('SIGTERM');
    await env.stop();
  }
}

// The plugin against the emulator; preRegister: devices <prefix>-00000.. exist beforehand.
async function pluginRun(n, { latencyMs = 0, pluginOptions = {}, quota = null, loadgenArgs = [], preRegister = null } = {}) {
  const env = await h.startEnv({ emulatorProcess: true, emulator: { quota: null }, logTypes: LOG, pluginOptions: { max_queue: 20000, ...pluginOptions } });
  try {
    if (preRegister) await env.emu.preRegister(env.productKey, Array.from({ length: n }, (_, i) => `${preRegister}-${String(i).padStart(5, '0')}`));
    await env.emu.setQuota(quota);
    await env.emu.setLatency(latencyMs);
    const r = await loadgen(env, n, preRegister ? loadgenArgs.concat(['--prefix', preRegister]) : loadgenArgs);
    r.cpu_ms_per_bootstrap = (r.broker.cpu_s * 1000) / Math.max(1, r.ok);
    const emu = await env.emu.stats();
    r.emulator = { calls: emu.byAction, throttled: emu.throttled };
    r.register_per_s = (emu.byAction.RegisterDevice || 0) / r.seconds;
    r.query_per_s = (emu.byAction.QueryDeviceDetail || 0) / r.seconds;
    await env.assertLogClean();
    return r;
  } finally {
    await env.stop();
  }
}

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
    const seed = await seedBaseline(n, Math.min(n, 256), 0);
    const alone = await emulatorAlone(n, Math.min(n, 256), 0);
    return {
      plugin, unsealed: clear, ceiling: ceil, seed, emulator_alone: alone,
      sealing_cpu_ms_per_bootstrap: plugin.cpu_ms_per_bootstrap - clear.cpu_ms_per_bootstrap,
      ratios: {
        broker_cpu_per_bootstrap_vs_ceiling: plugin.cpu_ms_per_bootstrap / ceil.cpu_ms_per_request,
        devices_per_s_vs_seed: plugin.devices_per_s / seed.per_s,
        devices_per_s_vs_ceiling: plugin.devices_per_s / ceil.devices_per_s,
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
    // memory per queued request: the slope between n and 2n pending requests, so that the
    // fixed cost of the max_inflight transfers on the wire cancels out
    const n = N.s4;
    const plugin = await pluginRun(n, { latencyMs: 2000, pluginOptions: { ...NO_QUOTA } });
    const twice = await pluginRun(2 * n, { latencyMs: 2000, pluginOptions: { ...NO_QUOTA }, loadgenArgs: ['--no-probe'] });
    const growth = (r) => (r.broker.rss_kib_peak - r.broker.rss_kib_before) * 1024;
    const idle = plugin.probe.idle.connack_ms.p99, storm = plugin.probe.storm.connack_ms.p99;
    return {
      plugin, twice, connack_p99_idle_ms: idle, connack_p99_storm_ms: storm, connack_bound_ms: 2 * idle + 5,
      rss_growth_bytes_per_request: growth(plugin) / n,
      rss_bytes_per_queued_request: (growth(twice) - growth(plugin)) / n,
      ok: plugin.ok === n && twice.ok === 2 * n,
    };
  },
  async S5() {
    const n = N.s5;
    const platform = await emulatorAlone(n, 1, 50);
    const plugin = await pluginRun(n, { latencyMs: 50, loadgenArgs: ['--sequential', '--no-probe'] });
    const woken = await pluginRun(n, { latencyMs: 50, pluginOptions: { wakeup_port: '$PORT' }, loadgenArgs: ['--sequential', '--no-probe'] });
    const added = (r) => ({ p50: r.latency_ms.p50 - platform.latency_ms.p50, p99: r.latency_ms.p99 - platform.latency_ms.p99 });
    return {
      plugin, woken, platform_round_trip_ms: platform.latency_ms, added_ms: added(plugin), added_ms_with_wakeup: added(woken),
      ok: plugin.ok === n && woken.ok === n,
    };
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

function f(x, d = 1) { return typeof x === 'number' ? x.toFixed(d) : '–'; }

function table(results) {
  const rows = [];
  const r = results;
  if (r.S1) {
    const s = r.S1;
    rows.push(`| S1 plugin, 0 ms, no quota | ${s.plugin.devices} | ${f(s.plugin.devices_per_s)} | ${f(s.plugin.latency_ms.p50)} / ${f(s.plugin.latency_ms.p99)} | ${f(s.plugin.cpu_ms_per_bootstrap, 3)} ms broker | ${JSON.stringify(s.plugin.codes)} |`);
    rows.push(`| S1 plugin, \`reply_encryption off\` | ${s.unsealed.devices} | ${f(s.unsealed.devices_per_s)} | ${f(s.unsealed.latency_ms.p50)} / ${f(s.unsealed.latency_ms.p99)} | ${f(s.unsealed.cpu_ms_per_bootstrap, 3)} ms broker (sealing: ${f(s.sealing_cpu_ms_per_bootstrap * 1000, 1)} µs) | ${JSON.stringify(s.unsealed.codes)} |`);
    rows.push(`| S1 baseline: broker ceiling (responder) | ${s.ceiling.devices} | ${f(s.ceiling.devices_per_s)} | ${f(s.ceiling.latency_ms.p50)} / ${f(s.ceiling.latency_ms.p99)} | ${f(s.ceiling.cpu_ms_per_request, 3)} ms broker | ${JSON.stringify(s.ceiling.codes)} |`);
    rows.push(`| S1 baseline: seed (pop-core HTTP function) | ${s.seed.requests} | ${f(s.seed.per_s)} | ${f(s.seed.latency_ms.p50)} / ${f(s.seed.latency_ms.p99)} | ${f(s.seed.cpu_ms_per_bootstrap, 3)} ms function | ok ${s.seed.ok} |`);
    rows.push(`| S1 baseline: emulator alone | ${s.emulator_alone.requests} | ${f(s.emulator_alone.per_s)} | ${f(s.emulator_alone.latency_ms.p50)} / ${f(s.emulator_alone.latency_ms.p99)} | – | ok ${s.emulator_alone.ok} |`);
  }
  if (r.S2) rows.push(`| S2 new-device storm, 100 ms, quota 30/50 | ${r.S2.plugin.devices} | ${f(r.S2.plugin.devices_per_s)} | ${f(r.S2.plugin.latency_ms.p50)} / ${f(r.S2.plugin.latency_ms.p99)} | Register ${f(r.S2.plugin.register_per_s)}/s, throttled ${r.S2.plugin.emulator.throttled} | ${JSON.stringify(r.S2.plugin.codes)} |`);
  if (r.S3) {
    rows.push(`| S3 existing devices, auto | ${r.S3.auto.devices} | ${f(r.S3.auto.devices_per_s)} | ${f(r.S3.auto.latency_ms.p50)} / ${f(r.S3.auto.latency_ms.p99)} | Query ${f(r.S3.auto.query_per_s)}/s, Register ${f(r.S3.auto.register_per_s)}/s, throttled ${r.S3.auto.emulator.throttled} | ${JSON.stringify(r.S3.auto.codes)} |`);
    if (r.S3.register_first) rows.push(`| S3 existing devices, register_first | ${r.S3.register_first.devices} | ${f(r.S3.register_first.devices_per_s)} | ${f(r.S3.register_first.latency_ms.p50)} / ${f(r.S3.register_first.latency_ms.p99)} | Query ${f(r.S3.register_first.query_per_s)}/s, Register ${f(r.S3.register_first.register_per_s)}/s | ${JSON.stringify(r.S3.register_first.codes)} |`);
  }
  if (r.S4) rows.push(`| S4 2 s platform, ${r.S4.plugin.devices} pending | ${r.S4.plugin.devices} | ${f(r.S4.plugin.devices_per_s)} | ${f(r.S4.plugin.latency_ms.p50)} / ${f(r.S4.plugin.latency_ms.p99)} | CONNACK p99 idle ${f(r.S4.connack_p99_idle_ms, 2)} → storm ${f(r.S4.connack_p99_storm_ms, 2)} ms; RSS +${f(r.S4.rss_growth_bytes_per_request, 0)} B/request with ${r.S4.plugin.devices}, ${f(r.S4.rss_bytes_per_queued_request, 0)} B per extra queued request | ${JSON.stringify(r.S4.plugin.codes)} |`);
  if (r.S5) {
    rows.push(`| S5 one at a time, 50 ms platform | ${r.S5.plugin.devices} | ${f(r.S5.plugin.devices_per_s)} | ${f(r.S5.plugin.latency_ms.p50)} / ${f(r.S5.plugin.latency_ms.p99)} | platform ${f(r.S5.platform_round_trip_ms.p50)} / ${f(r.S5.platform_round_trip_ms.p99)} ms; added ${f(r.S5.added_ms.p50)} / ${f(r.S5.added_ms.p99)} ms | ${JSON.stringify(r.S5.plugin.codes)} |`);
    rows.push(`| S5 same, with wakeup_port | ${r.S5.woken.devices} | ${f(r.S5.woken.devices_per_s)} | ${f(r.S5.woken.latency_ms.p50)} / ${f(r.S5.woken.latency_ms.p99)} | added ${f(r.S5.added_ms_with_wakeup.p50)} / ${f(r.S5.added_ms_with_wakeup.p99)} ms | ${JSON.stringify(r.S5.woken.codes)} |`);
  }
  if (r.S8) {
    for (const [label, x] of [['one broker, no Redis', r.S8.alone], ['one broker, Redis', r.S8.one_with_redis],
      ['three brokers, one Redis, HAProxy', r.S8.three_with_redis], ['three brokers, quota split (9/s each), HAProxy', r.S8.three_split],
      ['three brokers, quota split (9/s each), all to one', r.S8.three_split_all_to_one]]) {
      const redis = x.redis_round_trips_per_bootstrap === undefined ? '' : `; Redis ${f(x.redis_round_trips_per_bootstrap, 2)} round trips, ${f(x.redis_commands_per_bootstrap, 2)} commands per bootstrap`;
      rows.push(`| S8 ${label}, quota 30/s | ${x.devices} | ${f(x.devices_per_s)} | ${f(x.latency_ms.p50)} / ${f(x.latency_ms.p99)} | Register ${f(x.register_per_s)}/s, throttled ${x.emulator.throttled}; ${f(x.cpu_ms_per_bootstrap, 3)} ms broker CPU${redis} | ${JSON.stringify(x.codes)} |`);
    }
  }
  return ['| scenario | devices | devices/s | latency p50 / p99 ms | cost / rates | replies |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

(async () => {
  const results = { machine: { cpus: os.cpus().length, cpu: os.cpus()[0].model, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), quick: QUICK, date: new Date().toISOString() } };
  let failed = [];
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
    process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)} s${results[name].ok ? '' : ' FAILED'}\n`);
  }
  fs.mkdirSync(OUT, { recursive: true });
  const md = table(results);
  fs.writeFileSync(path.join(OUT, QUICK ? 'quick.json' : 'full.json'), JSON.stringify(results, null, 1));
  fs.writeFileSync(path.join(OUT, QUICK ? 'quick.md' : 'full.md'), md + '\n');
  console.log(md);
  if (results.S1 && results.S1.ratios) console.log('\nS1 ratios: ' + JSON.stringify(results.S1.ratios));
  if (failed.length) console.log(`\nscenarios without a complete result: ${failed.join(', ')}`);
  process.exit(CHECK && failed.length ? 1 : 0);
})();
