'use strict';
// The audit line's reason (docs/operating.md, "Reasons"), and the codes of docs/contract.md row
// by row: every malformed or refused request is sent as a device would (mosquitto_rr, or raw
// MQTT for bytes mosquitto_rr cannot send), under sign and under none, and the code on the reply
// topic and the reason in the audit file are both asserted.
const test = require('node:test');
const assert = require('assert');
const h = require('./lib/harness');

// One request per case, each under a client id of its own (so no refusal limit is reached, and
// its audit line is found by client). send: { id, message } for mosquitto_rr, or { id, raw }.
async function send(env, c) {
  if (c.raw !== undefined) return (await h.requestRaw(env.port, { id: c.id, payload: c.raw, version: c.version || 4, properties: c.properties })).reply;
  return (await h.rr(env.port, { id: c.id, message: c.message })).reply;
}

async function check(env, cases) {
  for (const c of cases) {
    const reply = await send(env, c);
    assert.ok(reply, `${c.name}: no reply`);
    if (c.code === 'ok') assert.strictEqual(reply.success, true, `${c.name}: ${JSON.stringify(reply)}`);
    else assert.strictEqual(reply.code, c.code, `${c.name}: ${JSON.stringify(reply)}`);
    assert.ok(!('reason' in reply), 'the reason is for the operator, not in the reply');
  }
  for (const c of cases) {
    const [line] = await h.waitForAudit(env, (l) => l.client === c.id);
    assert.deepStrictEqual([line.code, line.reason], [c.code, c.reason], `${c.name}: audit ${JSON.stringify(line)}`);
  }
}

const big = (id) => JSON.stringify({ deviceId: id, pad: 'x'.repeat(1100) });

test('sign: each unauthorized cause and each malformed request has its own reason; non-JSON is invalid_request', async () => {
  await h.withEnv({ pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    const replayed = env.request('dev-rs-replay');
    const badSign = JSON.parse(env.request('dev-rs-hex'));
    badSign.sign = 'zz';
    const badRandom = JSON.parse(env.request('dev-rs-rnd'));
    badRandom.random = 'short';
    const badMethod = JSON.parse(env.request('dev-rs-mth'));
    badMethod.signMethod = 'sha256';
    const partial = JSON.parse(env.request('dev-rs-part'));
    delete partial.sign;
    await check(env, [
      { name: 'signed', id: 'dev-rs-ok', message: env.request('dev-rs-ok'), code: 'ok', reason: 'registered' },
      { name: 'unsigned JSON', id: 'dev-rs-uns', message: JSON.stringify({ deviceId: 'dev-rs-uns' }), code: 'unauthorized', reason: 'unsigned' },
      { name: 'wrong secret', id: 'dev-rs-wrong', message: env.request('dev-rs-wrong', { key: 'not-the-secret' }), code: 'unauthorized', reason: 'sign_mismatch' },
      { name: 'product not served', id: 'dev-rs-prod', message: env.request('dev-rs-prod', { productKey: 'a1NotServedHere', key: 'any-secret', sendProductKey: true }),
        code: 'unauthorized', reason: 'product_not_served' },
      { name: 'another client id', id: 'other-rs-cid', message: env.request('dev-rs-cid'), code: 'unauthorized', reason: 'client_id_mismatch' },
      { name: 'first use of a random', id: 'dev-rs-replay', message: replayed, code: 'ok', reason: 'registered' },
    ]);
    // the same request again, from the device itself: its random is spent
    assert.strictEqual((await h.rr(env.port, { id: 'dev-rs-replay', message: replayed })).reply.code, 'unauthorized');
    const lines = await h.waitForAudit(env, (l) => l.client === 'dev-rs-replay', { n: 2 });
    assert.deepStrictEqual([lines[1].code, lines[1].reason], ['unauthorized', 'random_replayed']);

    await check(env, [
      // docs/contract.md: with sign the request is a JSON object; bare text, a deviceId or not, is not
      { name: 'bare deviceId text', id: 'dev-rs-bare', message: 'dev-rs-bare', code: 'invalid_request', reason: 'not_json' },
      { name: 'non-JSON text', id: 'asker-rs-txt', message: 'hello world!', code: 'invalid_request', reason: 'not_json' },
      { name: 'binary', id: 'asker-rs-bin', raw: Buffer.from([0x00, 0x01, 0xff, 0x10]), code: 'invalid_request', reason: 'not_json' },
      { name: 'broken JSON', id: 'asker-rs-brk', message: '{"deviceId":', code: 'invalid_request', reason: 'not_json' },
      { name: 'JSON array', id: 'asker-rs-arr', message: '["dev-rs-arr"]', code: 'invalid_request', reason: 'not_object' },
      { name: 'no deviceId', id: 'asker-rs-none', message: '{"device":"dev-rs-none"}', code: 'invalid_request', reason: 'device_id_missing' },
      { name: 'numeric deviceId', id: 'asker-rs-num', message: '{"deviceId":12345}', code: 'invalid_request', reason: 'device_id_not_string' },
      { name: 'deviceId breaking the rules', id: 'asker-rs-bad', message: '{"deviceId":"no/slash"}', code: 'invalid_device_id', reason: 'bad_device_id' },
      { name: 'over 1024 bytes', id: 'asker-rs-big', message: big('dev-rs-big'), code: 'invalid_request', reason: 'payload_too_large' },
      { name: 'productKey malformed', id: 'dev-rs-pk', message: JSON.stringify({ ...JSON.parse(env.request('dev-rs-pk')), productKey: 'a b' }),
        code: 'invalid_request', reason: 'bad_product_key' },
      { name: 'sign not hex', id: 'dev-rs-hex', message: JSON.stringify(badSign), code: 'invalid_request', reason: 'bad_sign_format' },
      { name: 'random too short', id: 'dev-rs-rnd', message: JSON.stringify(badRandom), code: 'invalid_request', reason: 'bad_random' },
      { name: 'unknown signMethod', id: 'dev-rs-mth', message: JSON.stringify(badMethod), code: 'invalid_request', reason: 'bad_sign_method' },
      { name: 'sign missing', id: 'dev-rs-part', message: JSON.stringify(partial), code: 'invalid_request', reason: 'sign_members_incomplete' },
      { name: 'v5 Response Topic with a wildcard', id: 'dev-rs-v5', raw: env.request('dev-rs-v5'), version: 5,
        properties: { responseTopic: 'bootstrap/reply/dev-rs-v5/#' }, code: 'invalid_request', reason: 'response_topic_refused' },
    ]);
    for (const name of ['dev-rs-uns', 'dev-rs-wrong', 'dev-rs-cid', 'dev-rs-bare', 'dev-rs-hex', 'dev-rs-rnd', 'dev-rs-mth', 'dev-rs-part', 'dev-rs-pk', 'dev-rs-v5']) {
      assert.strictEqual(env.emu.device(h.PRODUCT_KEY, name), null, `${name}: a refused request reached the platform`);
    }
  });
});

test('none: bare text is a deviceId, binary is not text; the same JSON rules as sign', async () => {
  await h.withEnv({ requestAuth: 'none', pluginOptions: { audit_file: '$DIR/audit.log' } }, async (env) => {
    await check(env, [
      { name: 'bare deviceId text', id: 'dev-rn-bare', message: 'dev-rn-bare', code: 'ok', reason: 'registered' },
      { name: 'non-JSON text breaking the rules', id: 'asker-rn-txt', message: 'hello world!', code: 'invalid_device_id', reason: 'bad_device_id' },
      { name: 'binary', id: 'asker-rn-bin', raw: Buffer.from([0x00, 0x01, 0xff, 0x10]), code: 'invalid_request', reason: 'not_text' },
      { name: 'not UTF-8', id: 'asker-rn-utf', raw: Buffer.from([0x64, 0x65, 0x76, 0xff, 0xfe]), code: 'invalid_request', reason: 'not_text' },
      { name: 'broken JSON', id: 'asker-rn-brk', message: '{"deviceId":', code: 'invalid_request', reason: 'not_json' },
      { name: 'numeric deviceId', id: 'asker-rn-num', message: '{"deviceId":12345}', code: 'invalid_request', reason: 'device_id_not_string' },
      { name: 'deviceId breaking the rules', id: 'asker-rn-bad', message: '{"deviceId":"no/slash"}', code: 'invalid_device_id', reason: 'bad_device_id' },
      { name: 'over 1024 bytes', id: 'asker-rn-big', message: big('dev-rn-big'), code: 'invalid_request', reason: 'payload_too_large' },
      { name: 'JSON deviceId', id: 'dev-rn-json', message: '{"deviceId":"dev-rn-json"}', code: 'ok', reason: 'registered' },
      // sign members are not checked under none, but must still be well-formed
      { name: 'unknown signMethod', id: 'dev-rn-mth', message: JSON.stringify({ deviceId: 'dev-rn-mth', random: 'abcdefgh', signMethod: 'sha1', sign: '00' }),
        code: 'invalid_request', reason: 'bad_sign_method' },
      { name: 'product not served', id: 'dev-rn-prod', message: JSON.stringify({ deviceId: 'dev-rn-prod', productKey: 'a1NotServedHere' }),
        code: 'unauthorized', reason: 'product_not_served' },
    ]);
  });
});
