'use strict';
// Does a platform that answers slowly stall the broker? Starts the built plugin in a real
// broker against the emulator with a fixed platform latency, measures a probe client's
// CONNACK latency idle and while N devices bootstrap at once, and reports completion time and
// the broker's CPU and RSS from /proc.
//
//   BOOTSTRAP_PLUGIN=build/mosquitto_bootstrap.so node bench/nonblocking.js [devices] [latency_ms] [probes]
const fs = require('fs');
const h = require('../tests/integration/lib/harness');

const N = Number(process.argv[2] || 200);
const LATENCY = Number(process.argv[3] || 2000);
const PROBES = Number(process.argv[4] || 40);

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function brokerStats(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const hz = 100;
  const cpu = (Number(stat[11]) + Number(stat[12])) / hz;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return { cpu, rssKiB: rss };
}

async function probe(port, count, gapMs) {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push((await h.connackMs(port)).ms);
    await h.sleep(gapMs);
  }
  return out;
}

(async () => {
  const env = await h.startEnv({ pluginOptions: { max_inflight: Math.max(64, N) } });
  try {
    const pid = env.broker.proc.pid;
    const idle = await probe(env.port, PROBES, 20);
    env.emu.setLatency(LATENCY);
    const before = brokerStats(pid);
    const t0 = Date.now();
    const ids = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
    const all = Promise.all(ids.map((id) => env.rr(id, { timeoutS: 60 }).then((r) => ({ r, ms: Date.now() - t0 }))));
    await h.sleep(Math.min(500, LATENCY / 4));
    const loaded = await probe(env.port, PROBES, Math.max(5, Math.floor((LATENCY * 0.6) / PROBES)));
    const results = await all;
    const elapsed = Date.now() - t0;
    const after = brokerStats(pid);
    const ok = results.filter((x) => x.r.reply && x.r.reply.success).length;
    const done = results.map((x) => x.ms);
    console.log(JSON.stringify({
      devices: N, platformLatencyMs: LATENCY, ok, failed: N - ok,
      allDoneMs: elapsed, perDeviceDoneMs: { p50: pct(done, 50), p99: pct(done, 99), max: Math.max(...done) },
      connackIdleMs: { p50: +pct(idle, 50).toFixed(2), p99: +pct(idle, 99).toFixed(2), max: +Math.max(...idle).toFixed(2) },
      connackDuringMs: { p50: +pct(loaded, 50).toFixed(2), p99: +pct(loaded, 99).toFixed(2), max: +Math.max(...loaded).toFixed(2) },
      brokerCpuS: +(after.cpu - before.cpu).toFixed(2), brokerRssKiB: { before: before.rssKiB, after: after.rssKiB },
      emulator: env.emu.stats().byAction,
    }, null, 1));
    env.assertLogClean();
  } finally {
    await env.stop();
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
