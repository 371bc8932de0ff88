'use strict';
// An independent client for the Link SDK 4.x MQTT dynamic registration (dynregmq), written from
// the protocol description (issue 22, shared/notes/aliyun-iot.md and the SDK's public sources),
// not from the plugin's code. It does what the SDK does on the wire:
//   CONNECT (MQTT 3.1.1, clean session, keepalive 1200 s) with
//     client id  <dn>.<pk>|random=<R>,authType=register,securemode=2,signmethod=hmacsha256[,instanceId=<id>]|
//     username   <dn>&<pk>
//     password   hex HMAC (keyed with the ProductSecret) of deviceName<dn>productKey<pk>random<R>
//   then subscribes to nothing, reads for up to 5 s for a PUBLISH on /ext/register carrying
//   {"productKey","deviceName","deviceSecret"}, and closes the socket without a DISCONNECT.
//
//   const dr = require('./lib/dynreg_client');
//   const r = await dr.register(port, { ca, productKey, deviceName, productSecret });
//   r.connack          // CONNACK return code (null: no CONNACK)
//   r.deviceSecret     // from /ext/register, or null
//   r.errorPayload     // a PUBLISH on /ext/register without a deviceSecret (the SDK ignores it), parsed
//   r.closedBy         // 'broker' (closed on us inside the window), 'client' (we closed), 'tls' (handshake failed)
//   r.elapsedMs        // from CONNACK to the answer or the close
const crypto = require('crypto');
const mqtt = require('./mqtt_raw');

const ALGO = { hmacsha256: 'sha256', hmacsha1: 'sha1', hmacmd5: 'md5' };

function parseOrText(buf) {
  try { return JSON.parse(buf.toString('utf8')); } catch (e) { return buf.toString('utf8'); }
}

// core_json_value finds the key anywhere in the payload: a non-empty string value counts
function hasSecret(buf) {
  const v = parseOrText(buf);
  return !!(v && typeof v === 'object' && typeof v.deviceSecret === 'string' && v.deviceSecret.length > 0);
}

// The C SDK's random: the decimal form of a random 32-bit number (1 to 10 digits).
function sdkRandom() { return String(crypto.randomBytes(4).readUInt32BE(0)); }

function sign({ productKey, deviceName, productSecret, random, method = 'hmacsha256', upper = true }) {
  const hex = crypto.createHmac(ALGO[method], productSecret).update(`deviceName${deviceName}productKey${productKey}random${random}`).digest('hex');
  return upper ? hex.toUpperCase() : hex;
}

// The CONNECT's three fields. The SDK always writes securemode=2; extra: more key=value pairs.
function credentials({ productKey, deviceName, productSecret, random = sdkRandom(), method = 'hmacsha256', upper = true,
  authType = 'register', instanceId = null, password = null, extra = [] }) {
  const fields = [`random=${random}`, `authType=${authType}`, 'securemode=2', `signmethod=${method}`, ...extra];
  if (instanceId) fields.push(`instanceId=${instanceId}`);
  return {
    clientId: `${deviceName}.${productKey}|${fields.join(',')}|`,
    username: `${deviceName}&${productKey}`,
    password: password !== null ? password : sign({ productKey, deviceName, productSecret, random, method, upper }),
    random,
  };
}

// Connects (over TLS when ca is given, tlsOptions added to node's; tls: false for a plain TCP
// listener), waits windowMs for
// the PUBLISH on /ext/register without subscribing, then drops the connection without DISCONNECT.
// Never throws for what the broker does: the result says what happened.
async function register(port, { ca = null, servername, tls: useTls = !!ca, tlsOptions = {}, windowMs = 5000, connectTimeoutMs = 10000, ...fields }) {
  const cred = fields.clientId ? fields : credentials(fields);
  const result = { connack: null, deviceSecret: null, payload: null, topic: null, qos: null, closedBy: null, elapsedMs: null, random: cred.random, clientId: cred.clientId, messages: [] };
  let client;
  try {
    client = await mqtt.connect(port, {
      tls: useTls ? { ca, servername, rejectUnauthorized: true, ...tlsOptions } : null,
      clientId: cred.clientId, username: cred.username, password: cred.password, keepAlive: 1200, clean: true, timeoutMs: connectTimeoutMs,
    });
  } catch (e) {
    result.closedBy = /no CONNACK/.test(e.message) ? 'timeout' : useTls && /connection closed: .*(certificate|SSL|TLS|EPROTO|ECONNRESET)/i.test(e.message) ? 'tls' : 'broker';
    result.error = e.message;
    return result;
  }
  result.connack = client.connack.returnCode;
  const start = Date.now();
  if (result.connack !== 0) {
    // a refused CONNECT: the broker closes the connection
    const closed = await Promise.race([client.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]);
    result.closedBy = closed ? 'broker' : 'client';
    if (!closed) await client.destroy();
    return result;
  }
  // the SDK completes only on a PUBLISH on /ext/register that carries a deviceSecret; any other
  // (an error) it reads and ignores, and goes on waiting until its window ends or the socket closes
  let outcome;
  try {
    const msg = await client.waitFor((m) => m.topic === '/ext/register' && hasSecret(m.payload), windowMs);
    result.elapsedMs = Date.now() - start;
    result.topic = msg.topic;
    result.qos = msg.qos;
    result.payload = JSON.parse(msg.payload.toString('utf8'));
    result.deviceSecret = result.payload.deviceSecret;
    outcome = 'client';
  } catch (e) {
    result.elapsedMs = Date.now() - start;
    outcome = client.socket.destroyed ? 'broker' : 'client';
  }
  const errors = client.messages.filter((m) => m.topic === '/ext/register' && !hasSecret(m.payload));
  if (errors.length) result.errorPayload = parseOrText(errors[0].payload);
  result.messages = client.messages.map((m) => ({ topic: m.topic, qos: m.qos }));
  result.closedBy = outcome;
  await client.destroy(); // no DISCONNECT, as the SDK
  return result;
}

// A device as the SDK demo runs it in a loop: on no secret it tries again after retryMs with a
// new random, up to maxTries. Resolves with { result, tries, outcomes }.
async function device(port, options, { maxTries = 10, retryMs = 1000 } = {}) {
  const outcomes = [];
  for (let tries = 1; ; tries++) {
    const result = await register(port, options);
    outcomes.push(result.deviceSecret ? 'secret' : result.connack === 0 ? `closed-by-${result.closedBy}` : `connack-${result.connack}`);
    if (result.deviceSecret || tries >= maxTries || (result.connack !== 0 && result.connack !== 3 && result.connack !== null)) return { result, tries, outcomes };
    await new Promise((r) => setTimeout(r, retryMs));
  }
}

module.exports = { register, device, credentials, sign, sdkRandom };
