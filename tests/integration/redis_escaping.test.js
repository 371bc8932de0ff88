'use strict';
// Text from Redis reaches the broker log escaped, never raw (issue 18: Redis answers are text
// from outside, like client ids and the platform's answers). A fake Redis, speaking RESP on
// loopback, answers every command with an error whose message holds a newline with a forged
// plugin line after it, a terminal escape and bytes of every range; the plugin logs Redis as
// unreachable with that message: escaped, distinct, no raw control byte.
const test = require('node:test');
const assert = require('assert');
const net = require('net');
const h = require('./lib/harness');

// a newline with a forged plugin line after it, a terminal escape, a backslash, and bytes from
// each range (the log keeps 160 escaped characters of Redis's words; every byte value goes
// through the same text__escape in unit_request and integration_escaping)
const HOSTILE = Buffer.concat([Buffer.from('ERR hostile\nmosquitto_bootstrap: FORGED\x1b[31m\\'), Buffer.from([0x01, 0x09, 0x7f, 0x80, 0xc2, 0xad, 0xff])]);

// The length of the first whole RESP command in buf (*N then N $len bulk strings), 0 if none yet.
function commandLength(buf) {
  const line = (at) => { const e = buf.indexOf('\r\n', at); return e < 0 ? null : [buf.subarray(at, e).toString(), e + 2]; };
  let l = line(0);
  if (!l || l[0][0] !== '*') return 0;
  let at = l[1];
  for (let n = Number(l[0].slice(1)); n > 0; n--) {
    l = line(at);
    if (!l) return 0;
    at = l[1] + Number(l[0].slice(1)) + 2;
    if (at > buf.length) return 0;
  }
  return at;
}

function fakeRedis() {
  const server = net.createServer((sock) => {
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      // one answer per whole command (an array of bulk strings; commands come pipelined),
      // whatever was asked (AUTH, PING, INFO, SCRIPT LOAD, EVALSHA...): this error
      for (;;) {
        const used = commandLength(pending);
        if (!used) break;
        pending = pending.subarray(used);
        sock.write(Buffer.concat([Buffer.from('-'), HOSTILE, Buffer.from('\r\n')]));
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('a Redis error message with control and high bytes, a newline and a forged line is logged escaped', async () => {
  const redis = await fakeRedis();
  try {
    await h.withEnv({ pluginOptions: { redis_url: `redis://127.0.0.1:${redis.address().port}/0`, redis_timeout_ms: 200 } }, async (env) => {
      await h.waitForLog(env, /shared state: Redis unreachable \(.*hostile/, 15000);
      const log = env.broker.log();
      const line = log.split('\n').find((l) => /shared state: Redis unreachable \(.*hostile/.test(l));
      // no raw control byte or byte above 0x7e anywhere in the plugin's lines
      for (const l of log.split('\n').filter((x) => x.includes('mosquitto_bootstrap:'))) {
        assert.ok(!/[^\x20-\x7e\t]/.test(l), `a raw control byte in: ${JSON.stringify(l)}`);
      }
      // the forged line did not become a line of its own
      assert.ok(!log.split('\n').some((l) => /^\d+: mosquitto_bootstrap: FORGED LOG LINE/.test(l) || /^mosquitto_bootstrap: FORGED/.test(l)), 'a forged line in the log');
      assert.ok(line.includes('ERR hostile\\x0amosquitto_bootstrap: FORGED\\x1b[31m\\\\\\x01\\x09\\x7f\\x80\\xc2\\xad\\xff'),
        `the newline, the escape, the backslash and each byte, escaped: ${line}`);
    });
  } finally {
    redis.close();
  }
});
