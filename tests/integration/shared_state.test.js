'use strict';
// Multi-broker mode: two brokers, one Redis (Debian's redis-server, started here), one account.
// A random is refused on every broker and across restarts; one platform flow per deviceId
// across brokers; refusals count on every broker; every key under the prefix; what is wrong
// in the Redis options stops the broker at start-up, and a Redis that refuses the password
// leaves the broker serving alone, without the password in any log.
const test = require('node:test');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const h = require('./lib/harness');

const EXAMPLE_ACL = /^user bootstrap on >\S+ (.*)$/m.exec(fs.readFileSync(path.join(__dirname, '../../examples/multi-broker/redis.conf'), 'utf8'))[1];

// A password file for the plugin (0600, the broker's user's), in dir.
function redisPasswordFile(dir, text) {
  const f = path.join(dir, 'redis-password');
  fs.writeFileSync(f, text, { mode: 0o600 });
  h.giveToBroker(f);
  return f;
}

async function metricsOf(env) {
  return h.readMetrics(env.port, ['-u', 'ops', '-P', 'ops-password']);
}

// Two brokers on one emulator and one Redis (with the example's ACL user, over its unix
// socket); the operator 'ops' reads their metrics.
async function twoBrokers(t, { prefix = 'fleet-eu', emulator = {} } = {}) {
  const password = 'redis-' + crypto.randomBytes(12).toString('hex');
  const redis = await h.startRedis({ user: 'bootstrap', password, aclRules: EXAMPLE_ACL.replace(/~mosquitto-bootstrap:\*/, `~${prefix}:*`) });
  const dir = h.makeWorkdir();
  const pw = await h.passwordFile(dir, { ops: 'ops-password' });
  const pwFile = redisPasswordFile(dir, `# the brokers' Redis user\nusername = bootstrap\npassword = ${password}\n`);
  const common = { redis_url: redis.unixUrl, redis_password_file: pwFile, redis_prefix: prefix, metrics_interval: 1, operator: 'ops' };
  const extraConfig = `password_file ${pw}\nallow_anonymous true`;
  const a = await h.startEnv({ emulator, pluginOptions: common, extraConfig });
  const b = await h.startEnv({ shareWith: a, pluginOptions: common, extraConfig });
  t.after(async () => {
    await b.stop();
    await a.stop();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const env of [a, b]) env.secrets.push(password);
  for (const env of [a, b]) {
    for (let i = 0; i < 100 && !/shared state: connected to redis/.test(env.broker.log()); i++) await h.sleep(50);
    assert.match(env.broker.log(), /mosquitto_bootstrap: shared state: connected to redis [0-9.]+ at unix:\/\/.* \(prefix fleet-eu/);
  }
  return { a, b, redis, password };
}

test('a signed request accepted by one broker is refused by the other, and by itself after a restart, with no platform call', async (t) => {
  const { a, b, redis } = await twoBrokers(t);
  const id = 'dev-replay-01';
  const message = a.request(id, { random: 'replayed-random-0001' });

  const first = await h.rr(a.port, { id, message });
  assert.ok(first.reply && first.reply.success, 'accepted on A');
  const calls = a.emu.stats().requests;

  const onB = await h.rr(b.port, { id, message });
  assert.strictEqual(onB.reply && onB.reply.code, 'unauthorized', 'the same request on B');
  assert.match(onB.reply.message, /already used/);

  const pid = a.broker.proc.pid;
  await a.restartBroker();
  assert.notStrictEqual(a.broker.proc.pid, pid, 'a new broker process');
  const afterRestart = await h.rr(a.port, { id, message });
  assert.strictEqual(afterRestart.reply && afterRestart.reply.code, 'unauthorized', 'the same request on A after its restart');
  assert.strictEqual(a.emu.stats().requests - calls, 0, 'a replay makes no platform call');

  // a fresh random is fine on either broker (the device exists, unactivated: QueryDeviceDetail)
  const fresh = await b.rr(id);
  assert.ok(fresh.reply && fresh.reply.success, 'a new random on B');

  // the replay key is there for 24 h, under the prefix
  const ttl = Number(await redis.cli('TTL', `fleet-eu:replay:${a.productKey}:${id}:replayed-random-0001`));
  assert.ok(ttl > 86000 && ttl <= 86400, `the replay key lives 24 h (TTL ${ttl})`);
  await h.sleep(1200);
  assert.strictEqual((await metricsOf(b))['shared/replays_refused'], 1);
  assert.strictEqual((await metricsOf(a))['shared/replays_refused'], 1);
  await a.assertLogClean();
  await b.assertLogClean();
});

test('a request that joins a flow under way with a random used elsewhere is refused too', async (t) => {
  const { a, b } = await twoBrokers(t);
  a.emu.setLatency(800);
  const id = 'dev-join-01';
  const used = a.request(id, { random: 'used-on-b-00001' });
  // the random is used on B (that flow answers), then a new request starts a flow on A and the
  // replay joins it while it waits for the platform
  const onB = await h.rr(b.port, { id, message: used, timeoutS: 10 });
  assert.ok(onB.reply && onB.reply.success);
  const mqtt = require('./lib/mqtt_raw');
  const c = await mqtt.connect(a.port, { clientId: id });
  try {
    await c.subscribe(`bootstrap/reply/${id}`, 0);
    await c.publish('bootstrap/register', a.request(id), { qos: 1 });
    await h.sleep(100);
    await c.publish('bootstrap/register', used, { qos: 1 });
    const m = await c.waitFor(() => true, 10000);
    const reply = JSON.parse(m.payload);
    assert.strictEqual(reply.code, 'unauthorized', 'the flow\'s triple is not handed to a replayed request');
  } finally {
    await c.disconnect();
  }
  await a.assertLogClean();
});

test('the same deviceId asked on two brokers at once: one RegisterDevice, both get their triple', async (t) => {
  const { a, b } = await twoBrokers(t);
  a.emu.setLatency(600); // the first flow is still at the platform when the second request comes
  const id = 'dev-twice-01';
  const [ra, rb] = await Promise.all([a.rr(id, { timeoutS: 20 }), h.sleep(50).then(() => b.rr(id, { timeoutS: 20 }))]);
  assert.ok(ra.reply && ra.reply.success, `A: ${JSON.stringify(ra.reply)}`);
  assert.ok(rb.reply && rb.reply.success, `B: ${JSON.stringify(rb.reply)}`);
  h.assertSameSecret(ra.reply.data.DeviceSecret, a.emu.device(h.PRODUCT_KEY, id).DeviceSecret, 'A\'s DeviceSecret');
  h.assertSameSecret(rb.reply.data.DeviceSecret, a.emu.device(h.PRODUCT_KEY, id).DeviceSecret, 'B\'s DeviceSecret');
  const byAction = a.emu.stats().byAction;
  assert.strictEqual(byAction.RegisterDevice, 1, JSON.stringify(byAction));
  assert.strictEqual(byAction.QueryDeviceDetail, 1, 'the broker that waited looked the device up');
  await h.sleep(1200);
  const [ma, mb] = [await metricsOf(a), await metricsOf(b)];
  // a counter is published once it moved: absent is 0
  const sum = (k) => (ma[k] || 0) + (mb[k] || 0);
  assert.strictEqual(sum('shared/flow_waits'), 1);
  assert.strictEqual(sum('shared/flow_after_other'), 1);
  assert.strictEqual(sum('shared/flow_busy'), 0);
  await a.assertLogClean();
  await b.assertLogClean();
});

test('refusals count on every broker: a client id refused on both is rate limited on both', async (t) => {
  const { a, b } = await twoBrokers(t);
  const spam = (env) => h.rr(env.port, { id: 'spammer-01', message: env.request('dev-spam-01', { key: 'not-the-product-secret' }),
    responseTopic: 'bootstrap/reply/spammer-01', timeoutS: 2 });
  // 5 on each: 10 in all, the client id's limit, and neither broker saw 10 itself
  for (const env of [a, b, a, b, a, b, a, b, a, b]) assert.strictEqual((await spam(env)).reply.code, 'unauthorized');
  await h.sleep(300); // B's tenth went to Redis: its verdict is back at B's next tick
  assert.strictEqual((await spam(b)).reply.code, 'rate_limited', 'B blocks the client id on Redis\'s word');
  assert.strictEqual((await spam(b)).reply, null, 'then silence');
  // A learns it from its next refusal (answered; Redis's answer comes after it)
  assert.strictEqual((await spam(a)).reply.code, 'unauthorized');
  await h.sleep(300);
  assert.strictEqual((await spam(a)).reply.code, 'rate_limited');
  assert.strictEqual((await spam(a)).reply, null);
  // a valid request from that client's address is still served
  assert.ok((await a.rr('dev-valid-01')).reply.success);
  await a.assertLogClean();
});

test('every key under the prefix; a Redis that refuses the password leaves the broker alone, the password in no log', async (t) => {
  const { a, redis, password } = await twoBrokers(t);
  assert.ok((await a.rr('dev-keys-01')).reply.success);
  const keys = (await redis.cli('--scan')).split('\n').filter(Boolean);
  assert.ok(keys.length >= 3, keys.join(' '));
  for (const k of keys) assert.ok(k.startsWith('fleet-eu:'), `${k} is outside the prefix`);

  // a third broker with a wrong password: it starts, says why Redis is of no use, and serves
  const dir = h.makeWorkdir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const wrong = 'wrong-' + crypto.randomBytes(8).toString('hex');
  const c = await h.startEnv({ shareWith: a, pluginOptions: { redis_url: redis.url, redis_password_file: redisPasswordFile(dir, `username = bootstrap\npassword = ${wrong}\n`), redis_prefix: 'fleet-eu' } });
  try {
    c.secrets.push(wrong, password);
    // never connected, it knows no other broker: half of each quota (less 5%)
    for (let i = 0; i < 60 && !/shared state: Redis unreachable/.test(c.broker.log()); i++) await h.sleep(50);
    assert.match(c.broker.log(), /mosquitto_bootstrap: shared state: Redis unreachable \(Redis refused the password \(plugin_opt_redis_password_file\): WRONGPASS[^)]*\); this broker goes on alone: .* 48% of each quota \(RegisterDevice 13\.8\/s/);
    assert.ok((await c.rr('dev-alone-01')).reply.success, 'served without Redis');
    await c.assertLogClean();
  } finally {
    await c.stop();
  }
});

test('Redis options that cannot work stop the broker at start-up, saying why', async () => {
  const dir = h.makeWorkdir();
  try {
    const cases = [
      [{ redis_url: 'rediss://10.0.0.20:6380/0' }, /plugin_opt_redis_url: rediss:\/\/ \(TLS\) is not supported: .*tunnel/],
      [{ redis_url: 'redis://bootstrap:InTheUrl99@127.0.0.1:6379' }, /plugin_opt_redis_url: no user or password in the URL/],
      [{ redis_url: 'redis://127.0.0.1', redis_password_file: redisPasswordFile(dir, 'password = x\n') }, null],
      [{ redis_prefix: 'fleet eu' }, /plugin_opt_redis_prefix/],
    ];
    // a password file readable by others
    const open = path.join(dir, 'open-password');
    fs.writeFileSync(open, 'password = OpenForAll77\n', { mode: 0o644 });
    h.giveToBroker(open);
    cases.push([{ redis_url: 'redis://127.0.0.1', redis_password_file: open }, /plugin_opt_redis_password_file: .* is accessible by group or others/]);
    for (const [pluginOptions, why] of cases) {
      if (!why) continue; // a good one, for contrast: it is accepted (checked in the tests above)
      const env = await h.startEnv({ pluginOptions, expectFailure: true });
      try {
        assert.ok(env.failure, `refused: ${JSON.stringify(pluginOptions)}`);
        assert.match(env.broker.log(), why);
        assert.ok(!env.broker.log().includes('InTheUrl99') && !env.broker.log().includes('OpenForAll77'), 'a password in the log');
      } finally {
        await env.stop();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
