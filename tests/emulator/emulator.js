'use strict';
// A stand-in for the Alibaba Cloud IoT Platform OpenAPI gateway (RPC style, API 2018-01-20).
//
// It checks requests the way the real gateway does (V3 ACS3-HMAC-SHA256 in the Authorization
// header, or signature 1.0 in the parameters, over GET or POST; AccessKeyId, security token,
// timestamp window, nonce reuse), implements RegisterDevice and QueryDeviceDetail with the real
// answer shapes and error codes, and can be told to misbehave. Secrets it holds are never printed.
// Strict by default (options.strict, setStrict): it verifies what arrived byte for byte, not what
// Node's parser makes of it (a repeated header, a query not in canonical encoding, a parameter the
// action does not take, a body that is not a form are refused; see strictCheck).
//
// Use as a module (createEmulator) or run it: node emulator.js --port 0 [--tls-cert f --tls-key f]
// Control API for other processes: GET /_emulator/stats, POST /_emulator/faults, POST /_emulator/reset.
// Batch actions (BatchCheckDeviceNames ... QueryPageByApplyId): see the "Batch actions" section; GET/POST /_emulator/batch.

const crypto = require('crypto');
const http = require('http');
const https = require('https');

const API_VERSION = '2018-01-20';
const TIMESTAMP_WINDOW_MS = 15 * 60 * 1000;
const NONCE_MEMORY = 100000;
const DEVICE_NAME_RE = /^[A-Za-z0-9_\-@.:]{4,32}$/;
const PROBE_NAME = 'mosquitto_bootstrap.check';
// a request body this large at most: BatchCheckDeviceNames takes 10 000 names (with nicknames) in a form body
const MAX_BODY_BYTES = 8 * 1024 * 1024;

// RFC 3986 percent-encoding, as the signature wants: encodeURIComponent leaves !'()* alone.
function percentEncode(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function canonicalQuery(params) {
  return Object.keys(params).filter((k) => k !== 'Signature').sort()
    .map((k) => percentEncode(k) + '=' + percentEncode(params[k])).join('&');
}

function sign(method, params, secret) {
  const toSign = method + '&' + percentEncode('/') + '&' + percentEncode(canonicalQuery(params));
  return crypto.createHmac('sha1', secret + '&').update(toSign, 'utf8').digest('base64');
}

// V3 (ACS3-HMAC-SHA256), per Alibaba's "V3 request structure and signature".
const V3_ALGORITHM = 'ACS3-HMAC-SHA256';
const V3_AUTHORIZATION_RE = /^ACS3-HMAC-SHA256 Credential=([^,\s]+),SignedHeaders=([a-z0-9;-]+),Signature=([0-9a-f]{64})$/;
// Headers that take part in the signature whenever they are sent (as the SDKs choose them).
const v3Signable = (name) => name.startsWith('x-acs-') || name === 'host' || name === 'content-type';

function sha256Hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

// CanonicalRequest: method, path ("/" for RPC), sorted percent-encoded query, "name:value\n" per
// signed header (lower-case names in the given order, values trimmed), the names joined by ";",
// and the hex SHA-256 of the body.
function canonicalRequestV3(method, pathname, query, headers, signedHeaders, hashedPayload) {
  // a string: the query as it arrived (strict: already checked to be in canonical form), sorted
  // as it is, never decoded and encoded again; an object: parameters to encode
  const byName = (a, b) => { const x = a.split('=')[0]; const y = b.split('=')[0]; return x < y ? -1 : x > y ? 1 : 0; };
  const q = typeof query === 'string' ? query.split('&').filter((x) => x).sort(byName).join('&')
    : Object.keys(query).sort().map((k) => percentEncode(k) + '=' + percentEncode(query[k])).join('&');
  const h = signedHeaders.map((name) => name + ':' + String(headers[name]).trim() + '\n').join('');
  return [method, pathname, q, h, signedHeaders.join(';'), hashedPayload].join('\n');
}

function signV3(canonicalRequest, secret) {
  const toSign = V3_ALGORITHM + '\n' + sha256Hex(Buffer.from(canonicalRequest, 'utf8'));
  return crypto.createHmac('sha256', secret).update(toSign, 'utf8').digest('hex');
}

function randomId(len, alphabet) {
  const bytes = crypto.randomBytes(len);
  let out = '';
  for (let i = 0; i < len; i++) out += alphabet[bytes[i] % alphabet.length];
  return out;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function requestId() {
  return crypto.randomUUID().toUpperCase();
}

// Parses application/x-www-form-urlencoded strictly: '+' is a literal plus in the signature's
// encoding, so it is not turned into a space (the real gateway decodes %20 only).
function parseForm(s) {
  const out = {};
  if (!s) return out;
  for (const part of s.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    out[k] = v;
  }
  return out;
}

// ---- strict mode: the gateway sees exactly what was signed ----
// Parameters each action takes (the official SDK's request models, @alicloud/iot20180120), besides
// the signature 1.0 common ones; DeviceName.N and DeviceNameList.N.* are the list forms.
const ACTION_PARAMS = {
  RegisterDevice: ['ProductKey', 'DeviceName', 'Nickname', 'IotInstanceId', 'AppKey', 'DevEui', 'JoinEui', 'LoraNodeType', 'PinCode'],
  QueryDeviceDetail: ['ProductKey', 'DeviceName', 'IotId', 'IotInstanceId'],
  BatchQueryDeviceDetail: ['ProductKey', 'IotInstanceId', /^DeviceName\.[1-9]\d{0,6}$/],
  BatchCheckDeviceNames: ['ProductKey', 'IotInstanceId', /^DeviceName\.[1-9]\d{0,6}$/, /^DeviceNameList\.[1-9]\d{0,6}\.(DeviceName|DeviceNickname)$/],
  QueryBatchRegisterDeviceStatus: ['ProductKey', 'ApplyId', 'IotInstanceId'],
  BatchRegisterDeviceWithApplyId: ['ProductKey', 'ApplyId', 'IotInstanceId'],
  QueryPageByApplyId: ['ApplyId', 'PageSize', 'CurrentPage', 'IotInstanceId'],
};
const V1_COMMON = ['Action', 'Format', 'Version', 'AccessKeyId', 'SignatureMethod', 'SignatureVersion', 'SignatureNonce',
  'Timestamp', 'RegionId', 'SecurityToken', 'Signature'];
const FORM_TYPE_RE = /^application\/x-www-form-urlencoded(;\s*charset=utf-8)?$/i;

// A query or form body in the signature's canonical encoding: every name and value is exactly
// percentEncode(decoded) (upper-case escapes, unreserved characters never escaped, %20 for
// space), no name twice. The reason it is not, or null.
function notCanonical(raw) {
  const seen = new Set();
  for (const part of raw.split('&')) {
    if (!part) return 'an empty parameter';
    const eq = part.indexOf('=');
    const pieces = eq < 0 ? [part] : [part.slice(0, eq), part.slice(eq + 1)];
    for (const x of pieces) {
      let decoded;
      try { decoded = decodeURIComponent(x); } catch (e) { return 'a malformed escape'; }
      if (/%(?:[a-f][0-9A-Fa-f]|[0-9A-F][a-f])/.test(x)) return 'a lower-case escape';
      if (percentEncode(decoded) !== x) return 'a parameter not in canonical encoding';
    }
    const name = decodeURIComponent(pieces[0]);
    if (seen.has(name)) return 'a parameter given twice';
    seen.add(name);
  }
  return null;
}

// Header names sent more than once (rawHeaders keeps every line; req.headers only the first of some).
function repeatedHeaders(rawHeaders) {
  const seen = new Set();
  const twice = new Set();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const n = rawHeaders[i].toLowerCase();
    if (seen.has(n)) twice.add(n);
    seen.add(n);
  }
  return [...twice];
}

// A parameter the action does not take (misspelt, or of another action), or null.
function unknownParameter(action, params, v3) {
  const allowed = ACTION_PARAMS[action];
  if (!allowed) return null; // an unknown action is answered as such
  for (const k of Object.keys(params)) {
    if (!v3 && V1_COMMON.includes(k)) continue;
    if (v3 && (k === 'Action' || k === 'Version' || k === 'AccessKeyId')) continue; // from the headers
    if (!allowed.some((a) => (typeof a === 'string' ? a === k : a.test(k)))) return k;
  }
  return null;
}

function createEmulator(options = {}) {
  const opts = {
    accessKeys: options.accessKeys || {},       // id -> { secret, securityToken? }
    products: options.products || ['a1TestProduct'],
    iotInstanceId: options.iotInstanceId || null, // required when set
    regionId: options.regionId || null,
    quota: options.quota || null,               // { RegisterDevice: qps, QueryDeviceDetail: qps }
    tls: options.tls || null,                   // { cert, key } PEM strings
    // strict (the default): what arrives must be exactly what was signed (see strictCheck)
    strict: options.strict !== false,
  };
  const devices = new Map(); // productKey/deviceName -> device
  const nonces = new Map();  // nonce -> time
  let faults = [];           // queue of { kind, count, ... } consumed in order
  let latencyMs = 0;
  let answerLatencyMs = 0;
  let stats;
  const apiSockets = new WeakSet();
  const windows = {};        // action -> [timestamps within the last second]

  function resetStats() {
    // bySignature: requests by how they were signed; lastV3: what the last V3 request signed and
    // where its parameters were (names only, never values)
    // connections: the connections that carried API calls (control calls left out, the start-up
    // check's in): with kept-alive clients far fewer than the requests
    const fresh = () => ({ requests: 0, byAction: {}, byCode: {}, throttled: 0, throttledBy: {}, faultsServed: 0, signatureFailures: 0,
      bySignature: { v1: 0, v3: 0 }, lastV3: null, connections: 0,
      // strict refusals by kind (duplicateHeader, queryNotCanonical, unknownParameter, contentType)
      strict: {} });
    // the plugin's start-up check (QueryDeviceDetail for PROBE_NAME), accounted apart so that
    // tests count device traffic; it still passes every gateway check and counts for the quota
    stats = { ...fresh(), checks: fresh() };
  }
  resetStats();

  function count(action, code) {
    stats.byAction[action] = (stats.byAction[action] || 0) + 1;
    stats.byCode[code] = (stats.byCode[code] || 0) + 1;
  }

  function gatewayError(res, status, code, message, action, rid) {
    count(action || 'unknown', code);
    send(res, status, { RequestId: rid || requestId(), HostId: 'iot.emulator.local', Code: code, Message: message,
      Recommend: 'https://api.aliyun.com/troubleshoot?q=' + code });
  }

  function businessError(res, code, message, action) {
    count(action, code);
    send(res, 200, { RequestId: requestId(), Success: false, Code: code, ErrorMessage: message });
  }

  function send(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json;charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  function takeFault() {
    while (faults.length && faults[0].count <= 0) faults.shift();
    if (!faults.length) return null;
    faults[0].count--;
    stats.faultsServed++;
    return faults[0];
  }

  function overQuota(action) {
    if (!opts.quota || !opts.quota[action]) return false;
    const now = Date.now();
    const w = (windows[action] = (windows[action] || []).filter((t) => now - t < 1000));
    if (w.length >= opts.quota[action]) return true;
    w.push(now);
    return false;
  }

  function deviceView(d) {
    return { IotId: d.IotId, ProductKey: d.ProductKey, DeviceName: d.DeviceName, DeviceSecret: d.DeviceSecret, Nickname: d.Nickname };
  }

  function registerDevice(p, res) {
    const pk = p.ProductKey;
    if (!pk) return businessError(res, 'iot.common.InvalidParameter', 'ProductKey is mandatory for this action.', 'RegisterDevice');
    if (!opts.products.includes(pk)) return businessError(res, 'iot.prod.NotExistedProduct', 'product does not exist', 'RegisterDevice');
    const name = p.DeviceName || randomId(20, ALNUM);
    if (!DEVICE_NAME_RE.test(name)) return businessError(res, 'iot.device.InvalidFormattedDeviceName', 'invalid device name', 'RegisterDevice');
    const key = pk + '/' + name;
    if (devices.has(key)) return businessError(res, 'iot.device.AlreadyExistedDeviceName', 'The device name already exists.', 'RegisterDevice');
    const now = new Date();
    const d = { IotId: randomId(20, ALNUM) + '000100', ProductKey: pk, DeviceName: name,
      DeviceSecret: crypto.randomBytes(16).toString('hex'), Nickname: p.Nickname || '',
      Status: 'UNACTIVE', GmtCreate: now.toUTCString(), UtcCreate: now.toISOString() };
    devices.set(key, d);
    count('RegisterDevice', 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Data: deviceView(d) });
  }

  function queryDeviceDetail(p, res) {
    let d = null;
    if (p.IotId) d = [...devices.values()].find((x) => x.IotId === p.IotId) || null;
    else if (p.ProductKey && p.DeviceName) {
      if (!opts.products.includes(p.ProductKey)) return businessError(res, 'iot.prod.NotExistedProduct', 'product does not exist', 'QueryDeviceDetail');
      d = devices.get(p.ProductKey + '/' + p.DeviceName) || null;
    }
    else return businessError(res, 'iot.common.InvalidParameter', 'ProductKey and DeviceName, or IotId, are required.', 'QueryDeviceDetail');
    if (!d) return businessError(res, 'iot.device.NotExistedDevice', 'The device does not exist.', 'QueryDeviceDetail');
    count('QueryDeviceDetail', 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Data: {
      IotId: d.IotId, ProductKey: d.ProductKey, ProductName: 'emulated product', DeviceName: d.DeviceName,
      DeviceSecret: d.DeviceSecret, Status: d.Status, Nickname: d.Nickname, NodeType: 0, FirmwareVersion: '',
      GmtCreate: d.GmtCreate, UtcCreate: d.UtcCreate, GmtActive: '', UtcActive: '', GmtOnline: '', UtcOnline: '',
      IpAddress: '', Owner: true, Region: opts.regionId || 'cn-shanghai' } });
  }

  // The gateway's checks, in the order the real one reports them.
  function authenticate(method, p, res) {
    const action = p.Action || 'unknown';
    for (const k of ['AccessKeyId', 'Signature', 'SignatureMethod', 'SignatureVersion', 'SignatureNonce', 'Timestamp']) {
      if (!p[k]) { gatewayError(res, 400, 'IncompleteSignature', 'The request signature does not conform to Aliyun standards (missing ' + k + ').', action); return false; }
    }
    if (p.SignatureMethod !== 'HMAC-SHA1' || p.SignatureVersion !== '1.0') {
      gatewayError(res, 400, 'IncompleteSignature', 'Unsupported signature method or version.', action); return false;
    }
    const key = accessKeyFor(p.AccessKeyId);
    if (!key) { gatewayError(res, 404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.', action); return false; }
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(p.Timestamp)) {
      gatewayError(res, 400, 'InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted.', action); return false;
    }
    if (Math.abs(Date.now() - Date.parse(p.Timestamp)) > TIMESTAMP_WINDOW_MS) {
      gatewayError(res, 400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.', action); return false;
    }
    const expected = sign(method, p, key.secret);
    const given = Buffer.from(p.Signature);
    if (given.length !== Buffer.byteLength(expected) || !crypto.timingSafeEqual(given, Buffer.from(expected))) {
      stats.signatureFailures++;
      gatewayError(res, 400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation.', action); return false;
    }
    if (key.issued && !issuedTokenValid(key, p.SecurityToken, res, action)) return false;
    if (key.securityToken !== undefined && p.SecurityToken !== key.securityToken) {
      gatewayError(res, 400, 'InvalidSecurityToken.Mismatch', 'Specified SecurityToken is invalid.', action); return false;
    }
    if (nonces.has(p.SignatureNonce)) {
      gatewayError(res, 400, 'SignatureNonceUsed', 'Specified signature nonce was used already.', action); return false;
    }
    nonces.set(p.SignatureNonce, Date.now());
    if (nonces.size > NONCE_MEMORY) nonces.delete(nonces.keys().next().value);
    return true;
  }

  // V3: the same checks, from the Authorization and x-acs-* headers; the parameters come from
  // the query (and a form body, if any), Action and Version from the headers.
  function authenticateV3(method, p, res, v3) {
    const action = p.Action || 'unknown';
    const h = v3.headers;
    const incomplete = (why) => {
      gatewayError(res, 400, 'IncompleteSignature', 'The request signature does not conform to Aliyun standards (' + why + ').', action);
      return false;
    };
    const m = V3_AUTHORIZATION_RE.exec(v3.authorization);
    if (!m) return incomplete('malformed Authorization');
    const [, keyId, signedList, signature] = m;
    const signed = signedList.split(';');
    if (signed.join(';') !== [...new Set(signed)].sort().join(';')) return incomplete('SignedHeaders must be sorted and unique');
    for (const k of ['host', 'x-acs-action', 'x-acs-version', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-content-sha256']) {
      if (!h[k]) return incomplete('missing ' + k);
    }
    for (const k of Object.keys(h)) if (v3Signable(k) && !signed.includes(k)) return incomplete(k + ' is not signed');
    for (const k of signed) if (h[k] === undefined) return incomplete(k + ' is signed but not sent');
    if (h['x-acs-accesskey-id'] !== undefined && h['x-acs-accesskey-id'] !== keyId) return incomplete('x-acs-accesskey-id is not the Credential');
    const key = accessKeyFor(keyId);
    if (!key) { gatewayError(res, 404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.', action); return false; }
    const date = h['x-acs-date'];
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(date)) {
      gatewayError(res, 400, 'InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted.', action); return false;
    }
    if (Math.abs(Date.now() - Date.parse(date)) > TIMESTAMP_WINDOW_MS) {
      gatewayError(res, 400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.', action); return false;
    }
    // the payload hash is the body's own: a body that is not what x-acs-content-sha256 says fails here
    const canonical = canonicalRequestV3(method, v3.pathname, v3.query, h, signed, sha256Hex(v3.body));
    const expected = signV3(canonical, key.secret);
    if (!crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected))) {
      stats.signatureFailures++;
      gatewayError(res, 400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation.', action); return false;
    }
    if (key.issued && !issuedTokenValid(key, h['x-acs-security-token'], res, action)) return false;
    if (key.securityToken !== undefined && h['x-acs-security-token'] !== key.securityToken) {
      gatewayError(res, 400, 'InvalidSecurityToken.Mismatch', 'Specified SecurityToken is invalid.', action); return false;
    }
    const nonce = h['x-acs-signature-nonce'];
    if (nonces.has(nonce)) {
      gatewayError(res, 400, 'SignatureNonceUsed', 'Specified signature nonce was used already.', action); return false;
    }
    nonces.set(nonce, Date.now());
    if (nonces.size > NONCE_MEMORY) nonces.delete(nonces.keys().next().value);
    p.AccessKeyId = keyId;
    return true;
  }

  function handleApi(method, p, res, v3 = null) {
    if (p.Action === 'QueryDeviceDetail' && p.DeviceName === PROBE_NAME) {
      // the probe runs with the checks' own counters, and takes no injected fault
      const real = stats;
      stats = real.checks;
      // the products the checks asked about (a test asserts the check named its product)
      stats.byProduct = stats.byProduct || {};
      stats.byProduct[p.ProductKey] = (stats.byProduct[p.ProductKey] || 0) + 1;
      try { return handleCall(method, p, res, v3, false); } finally { stats = real; }
    }
    return handleCall(method, p, res, v3, true);
  }

  function handleCall(method, p, res, v3, mayFault) {
    stats.requests++;
    stats.bySignature[v3 ? 'v3' : 'v1']++;
    if (v3) stats.lastV3 = { signedHeaders: (V3_AUTHORIZATION_RE.exec(v3.authorization) || [])[2] || null,
      query: v3.queryNames.slice().sort(), bodyBytes: v3.body.length };
    const fault = mayFault ? takeFault() : null;
    // the gateway counts a call against the quota when it arrives, however long it then takes
    const overQuotaOnArrival = !fault && overQuota(p.Action);
    const counters = stats;
    const run = () => {
      const real = stats;
      stats = counters; // a delayed answer still counts where its request did
      try { return runCall(); } finally { stats = real; }
    };
    const runCall = () => {
      if (fault) {
        if (fault.kind === 'drop') { res.socket.destroy(); count(p.Action || 'unknown', 'Dropped'); return; }
        if (fault.kind === 'garbage') { count(p.Action || 'unknown', 'Garbage'); res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<html>502 Bad Gateway</html>'); return; }
        // code, message, requestId: what a hostile or broken platform may put there (tests of escaping)
        if (fault.kind === '5xx') return gatewayError(res, fault.status || 503, fault.code || 'ServiceUnavailable', fault.message || 'The request has failed due to a temporary failure of the server.', p.Action, fault.requestId);
        if (fault.kind === 'throttle') { stats.throttled++; return gatewayError(res, fault.status || 400, 'Throttling.User', 'Request was denied due to user flow control.', p.Action); }
      }
      if (!(v3 ? authenticateV3(method, p, res, v3) : authenticate(method, p, res))) return;
      if (!strictParameters(p, v3, res)) return;
      if (p.Format && p.Format !== 'JSON') return gatewayError(res, 400, 'InvalidParameter.Format', 'Only JSON answers are emulated.', p.Action);
      if (p.Version !== API_VERSION) return gatewayError(res, 400, 'InvalidVersion', 'Specified parameter Version is not valid.', p.Action);
      if (opts.iotInstanceId && p.IotInstanceId !== opts.iotInstanceId) return businessError(res, 'iot.system.InstanceNotFound', 'The instance is not found.', p.Action);
      if (batchCfg.deniedActions.includes(p.Action)) {
        // RAM: the AccessKey's identity has no grant for this action
        return gatewayError(res, 403, 'Forbidden.RAM', 'User not authorized to operate on the specified resource, or this API doesn\'t support RAM.', p.Action);
      }
      if (overQuotaOnArrival) { stats.throttled++; stats.throttledBy[p.Action] = (stats.throttledBy[p.Action] || 0) + 1; return gatewayError(res, 503, 'Throttling.User', 'Request was denied due to user flow control.', p.Action); }
      if (p.Action === 'RegisterDevice') return registerDevice(p, res);
      if (p.Action === 'QueryDeviceDetail') return queryDeviceDetail(p, res);
      if (batchAction(p, res)) return;
      return gatewayError(res, 404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.', p.Action);
    };
    const delay = (fault && fault.kind === 'latency') ? fault.ms : latencyMs;
    // answer latency: the platform acts at once (registers the device), the answer comes later
    if (answerLatencyMs > 0) { const end = res.end.bind(res); res.end = (...a) => setTimeout(() => end(...a), answerLatencyMs); }
    if (delay > 0) setTimeout(run, delay); else run();
  }

  function handleControl(req, url, body, res) {
    if (req.method === 'GET' && url.pathname === '/_emulator/stats') return send(res, 200, stats);
    if (req.method === 'POST' && url.pathname === '/_emulator/reset') { resetStats(); faults = []; latencyMs = 0; return send(res, 200, { ok: true }); }
    if (req.method === 'GET' && url.pathname === '/_emulator/device') {
      const d = devices.get(url.searchParams.get('productKey') + '/' + url.searchParams.get('name'));
      return d ? send(res, 200, d) : send(res, 404, { error: 'no such device' });
    }
    // test support only: the secrets it handed out, so a test can check none was logged
    if (req.method === 'GET' && url.pathname === '/_emulator/secrets') return send(res, 200, [...devices.values()].map((d) => d.DeviceSecret));
    if (req.method === 'POST' && url.pathname === '/_emulator/preregister') {
      let f;
      try { f = JSON.parse(body); } catch (e) { return send(res, 400, { error: 'bad json' }); }
      for (const name of f.names || []) api.preRegister(f.productKey, name);
      return send(res, 200, { ok: true, count: devices.size });
    }
    if (req.method === 'POST' && url.pathname === '/_emulator/quota') {
      try { opts.quota = JSON.parse(body); } catch (e) { return send(res, 400, { error: 'bad json' }); }
      return send(res, 200, { ok: true });
    }
    if (req.method === 'POST' && url.pathname === '/_emulator/faults') {
      let f;
      try { f = JSON.parse(body); } catch (e) { return send(res, 400, { error: 'bad json' }); }
      if (typeof f.latencyMs === 'number') latencyMs = f.latencyMs;
      if (Array.isArray(f.faults)) faults.push(...f.faults.map((x) => ({ ...x, count: x.count || 1 })));
      return send(res, 200, { ok: true });
    }
    send(res, 404, { error: 'unknown control path' });
  }

  // Strict mode: refuses what a stricter gateway (or a proxy in front of it) would see differently
  // from what was signed. A header line sent twice is joined with "," by Alibaba's signer, so it is
  // answered SignatureDoesNotMatch, as the real gateway would; the other refusals name their cause.
  function strictCheck(req, rawQuery, rawBody, query, form, params, v3, res) {
    const refuse = (kind, status, code, message) => {
      stats.strict[kind] = (stats.strict[kind] || 0) + 1;
      if (code === 'SignatureDoesNotMatch') stats.signatureFailures++;
      gatewayError(res, status, code, message, params.Action || 'unknown');
      return false;
    };
    const twice = repeatedHeaders(req.rawHeaders);
    if (twice.length) {
      return refuse('duplicateHeader', 400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation (header ' +
        twice.join(',') + ' sent more than once).');
    }
    const q = rawQuery ? notCanonical(rawQuery) : null;
    if (q) return refuse('queryNotCanonical', 400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation (query: ' + q + ').');
    const type = req.headers['content-type'];
    if (rawBody.length > 0) {
      if (!type || !FORM_TYPE_RE.test(type)) return refuse('contentType', 400, 'InvalidParameter.ContentType', 'A request body must be application/x-www-form-urlencoded.');
      const b = notCanonical(rawBody.toString('latin1'));
      if (b) return refuse('bodyNotCanonical', 400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation (body: ' + b + ').');
    } else if (type !== undefined && !FORM_TYPE_RE.test(type)) {
      return refuse('contentType', 400, 'InvalidParameter.ContentType', 'The Content-Type does not match the (empty) body.');
    }
    if (v3) {
      for (const k of Object.keys(form)) {
        if (Object.prototype.hasOwnProperty.call(query, k)) return refuse('parameterTwice', 400, 'InvalidParameter', 'Parameter ' + k + ' is in the query and in the body.');
      }
    }
    return true;
  }

  // Strict, after the gateway's own checks (an unknown parameter with a wrong secret is still
  // SignatureDoesNotMatch): a parameter the action does not take, misspelt or of another action.
  function strictParameters(p, v3, res) {
    if (!opts.strict) return true;
    const unknown = unknownParameter(p.Action, p, !!v3);
    if (!unknown) return true;
    stats.strict.unknownParameter = (stats.strict.unknownParameter || 0) + 1;
    gatewayError(res, 400, 'InvalidParameter.Unknown', 'The parameter ' + unknown + ' is not one of ' + p.Action + '\'s.', p.Action);
    return false;
  }

  function onRequest(req, res) {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => { size += c.length; if (size > MAX_BODY_BYTES) req.destroy(); else chunks.push(c); });
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = raw.toString('utf8');
      const url = new URL(req.url, 'http://emulator');
      if (credentialRoute(req, url, body, res)) return;
      if (batchRoute(req, url, body, res)) return;
      if (url.pathname.startsWith('/_emulator/')) return handleControl(req, url, body, res);
      if (!apiSockets.has(req.socket)) { apiSockets.add(req.socket); stats.connections++; }
      // an Authorization header means V3; without one, signature 1.0 in the parameters
      const v3 = req.headers.authorization !== undefined;
      let params, query, form = {};
      const rawQuery = url.search.slice(1);
      try {
        if (v3) {
          query = parseForm(rawQuery);
          form = /^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] || '') ? parseForm(body) : {};
          params = { ...query, ...form, Action: req.headers['x-acs-action'], Version: req.headers['x-acs-version'] };
        } else {
          params = req.method === 'POST' ? parseForm(body) : parseForm(rawQuery);
        }
      } catch (e) {
        return gatewayError(res, 400, 'InvalidParameter', 'The request is not well formed.', 'unknown');
      }
      if (opts.strict && !strictCheck(req, rawQuery, raw, query, form, params, v3, res)) return;
      if (url.pathname !== '/' || (req.method !== 'GET' && req.method !== 'POST')) {
        return gatewayError(res, 404, 'InvalidAction.NotFound', 'Specified api is not found.', params.Action);
      }
      // strict: the V3 signature is verified over the query as it arrived, not decoded and encoded again
      handleApi(req.method, params, res, v3 ? { authorization: req.headers.authorization, headers: req.headers,
        pathname: url.pathname, query: opts.strict ? rawQuery : query, queryNames: Object.keys(query), body: raw } : null);
    });
  }

  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest) : http.createServer(onRequest);
  server.keepAliveTimeout = 30000;

  const api = {
    server,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve) => server.listen(port, host, () => resolve(server.address().port)));
    },
    close() {
      return new Promise((resolve) => { server.closeAllConnections && server.closeAllConnections(); server.close(() => resolve()); });
    },
    stats: () => JSON.parse(JSON.stringify(stats)),
    resetStats,
    setLatency(ms) { latencyMs = ms; },
    setAnswerLatency(ms) { answerLatencyMs = ms; },
    setAccessKeys(keys) { opts.accessKeys = keys; },
    // strict checks (on unless createEmulator({ strict: false })): see strictCheck
    setStrict(on) { opts.strict = !!on; },
    setQuota(quota) { opts.quota = quota; },
    addFaults(...list) { faults.push(...list.map((x) => ({ ...x, count: x.count || 1 }))); },
    clearFaults() { faults = []; },
    device(productKey, name) { return devices.get(productKey + '/' + name) || null; },
    setDeviceStatus(productKey, name, status) { const d = devices.get(productKey + '/' + name); if (d) d.Status = status; },
    // A device registered before the test (no call counted), Status UNACTIVE.
    preRegister(productKey, name) {
      const now = new Date();
      devices.set(productKey + '/' + name, { IotId: randomId(20, ALNUM) + '000100', ProductKey: productKey, DeviceName: name,
        DeviceSecret: crypto.randomBytes(16).toString('hex'), Nickname: '', Status: 'UNACTIVE', GmtCreate: now.toUTCString(), UtcCreate: now.toISOString() });
    },
    deviceCount: () => devices.size,
    allDeviceSecrets: () => [...devices.values()].map((d) => d.DeviceSecret),
  };

  // ---------------------------------------------------------------------------------------------
  // Credential services: what the plugin's credential chain talks to, on this same port.
  //   ECS metadata: PUT /latest/api/token, GET /latest/meta-data/ram/security-credentials/[role];
  //     credentials.imds 'v2' (default): a session token is required (only PUT with the TTL header
  //     gets one); 'v1': a service without IMDSv2 (the token PUT is 404, a GET carrying a token
  //     header is 401: none was issued); 'optional': both
  //   STS also checks Policy (a policy document), ExternalId (its documented form; required and
  //     compared when credentials.externalId is set) and records what each action received last
  //     (stats.credentials.lastSts: no secrets, the OIDC token as a SHA-256 prefix)
  //   STS 2015-04-01 (RPC at /): AssumeRole (signed, long-term caller), AssumeRoleWithOIDC (anonymous)
  //   credentials URI: GET /_credentials (credentials.uriPath)
  // Every credential handed out is new (STS.-prefixed AccessKeyId, secret, SecurityToken) and lasts
  // credentials.ttlS seconds; the IoT actions accept it with its own SecurityToken until then and
  // answer InvalidSecurityToken.Expired after. Control: GET/POST /_emulator/credentials,
  // GET /_emulator/issued-secrets; counters under stats.credentials.
  // ---------------------------------------------------------------------------------------------
  const STS_API_VERSION = '2015-04-01';
  const STS_ACTIONS = new Set(['AssumeRole', 'AssumeRoleWithOIDC']);
  const CREDENTIAL_SERVICES = ['metadata', 'sts', 'uri'];
  const ROLE_SESSION_NAME_RE = /^[A-Za-z0-9.@\-_]{2,64}$/;
  const EXTERNAL_ID_RE = /^[A-Za-z0-9=,.@:\/\-_]{2,1224}$/;
  const POLICY_MAX = 2048;
  const IMDS_MODES = ['v2', 'v1', 'optional'];
  const EMULATED_ACCOUNT_ID = '1234567890123456';
  const ISSUED_MEMORY = 10000;            // issued credentials remembered (expired ones included)
  const METADATA_TOKEN_MEMORY = 10000;
  const ISSUED_SECRET_LOG_MEMORY = 200000;

  function freshCredentialStats() {
    return {
      // requests per credential endpoint, whatever the answer
      calls: { metadataToken: 0, metadataRoleName: 0, metadataCredentials: 0, metadataOther: 0, AssumeRole: 0, AssumeRoleWithOIDC: 0, credentialsUri: 0 },
      metadataWithoutToken: 0,    // IMDS reads answered without a session token (IMDSv1)
      lastSts: {},                // per action: the parameters of its last accepted request (no secrets)
      oidcAccepted: 0,
      issued: {},                 // per endpoint: tokens / credentials handed out
      refused: 0,                 // answered by the refusal switch
      metadataUnauthorized: 0,    // IMDS reads without a valid token (401)
      oidcTokenRefused: 0,
      iotRefusedExpired: 0,       // IoT calls refused with InvalidSecurityToken.Expired
      stsRefusedExpired: 0,
      tokenMismatch: 0,
      tokenMissing: 0,
    };
  }

  function isoSeconds(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  function safeEqual(a, b) {
    const x = Buffer.from(String(a));
    const y = Buffer.from(String(b));
    return x.length === y.length && crypto.timingSafeEqual(x, y);
  }

  function base64url(obj) {
    return Buffer.from(JSON.stringify(obj)).toString('base64url');
  }

  // A JWT-shaped service-account token (unsigned: the emulator compares it whole).
  function fakeOidcToken() {
    const iat = Math.floor(Date.now() / 1000);
    return base64url({ alg: 'RS256', kid: 'emulator' }) + '.' +
      base64url({ iss: 'https://oidc.emulator.local', sub: 'system:serviceaccount:default:mosquitto', aud: ['sts.aliyuncs.com'], iat, exp: iat + 86400 }) +
      '.' + crypto.randomBytes(64).toString('base64url');
  }

  // OIDCTokenInfo from the token's claims when it is a JWT, else placeholders.
  function oidcTokenInfo(token) {
    let claims = {};
    try { claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) || {}; } catch (e) { claims = {}; }
    const time = (s) => (typeof s === 'number' ? isoSeconds(s * 1000) : '');
    return { Subject: String(claims.sub || ''), Issuer: String(claims.iss || ''),
      ClientIds: Array.isArray(claims.aud) ? claims.aud.join(',') : String(claims.aud || ''),
      ExpirationTime: time(claims.exp), IssuanceTime: time(claims.iat), VerificationInfo: 'Success' };
  }

  const credOptions = options.credentials || {};
  const cred = {
    roleName: credOptions.roleName || 'EmulatorEcsRole',
    roleArn: credOptions.roleArn || 'acs:ram::' + EMULATED_ACCOUNT_ID + ':role/emulator-role',
    oidcProviderArn: credOptions.oidcProviderArn || 'acs:ram::' + EMULATED_ACCOUNT_ID + ':oidc-provider/emulator-oidc',
    oidcToken: credOptions.oidcToken || fakeOidcToken(),
    uriPath: credOptions.uriPath || '/_credentials',
    ttlS: credOptions.ttlS || options.credentialTtlS || 3600,
    maxSessionS: credOptions.maxSessionS || 3600,  // the role's MaxSessionDuration: DurationSeconds 900..this
    roleId: randomId(17, '0123456789').replace(/^0/, '1'),
    stsCallers: options.stsCallers || null,        // null: every configured long-term AccessKey
    imds: credOptions.imds || 'v2',                // 'v2', 'v1' or 'optional' (see above)
    externalId: credOptions.externalId || null,    // the role's trust policy asks AssumeRole for this ExternalId
    refuse: false,
    refuseStatus: 503,
    refuseServices: CREDENTIAL_SERVICES.slice(),
  };
  const issued = new Map();          // AccessKeyId -> issued credential, expired ones kept (bounded)
  const metadataTokens = new Map();  // IMDSv2 token -> expiry (ms)
  const issuedSecretLog = [];        // every secret / token handed out, for log audits (bounded)

  // The counters live in stats.credentials; resetStats() replaces stats, so they are made again
  // on first use (every request passes credentialRoute, and api.stats() asks too).
  function credStats() {
    if (!stats.credentials) stats.credentials = freshCredentialStats();
    return stats.credentials;
  }

  function rememberSecret(...values) {
    issuedSecretLog.push(...values);
    if (issuedSecretLog.length > ISSUED_SECRET_LOG_MEMORY) issuedSecretLog.splice(0, issuedSecretLog.length - ISSUED_SECRET_LOG_MEMORY);
  }

  function accessKeyFor(id) {
    return opts.accessKeys[id] || issued.get(id) || null;
  }

  function stsCallerIds() {
    if (cred.stsCallers) return cred.stsCallers;
    return Object.keys(opts.accessKeys).filter((id) => opts.accessKeys[id].securityToken === undefined);
  }

  // After the signature check, for a key this emulator issued: the token (SecurityToken, or V3's
  // x-acs-security-token) must be its own and the credential unexpired.
  function issuedTokenValid(key, token, res, action) {
    const c = credStats();
    if (!token) {
      c.tokenMissing++;
      gatewayError(res, 400, 'MissingSecurityToken', 'SecurityToken is mandatory for this action.', action); return false;
    }
    if (!safeEqual(token, key.token)) {
      c.tokenMismatch++;
      gatewayError(res, 400, 'InvalidSecurityToken.MismatchWithAccessKey', 'Specified SecurityToken mismatch with the AccessKey.', action); return false;
    }
    if (Date.now() >= key.expiresAt) {
      if (STS_ACTIONS.has(action)) c.stsRefusedExpired++; else c.iotRefusedExpired++;
      gatewayError(res, 400, 'InvalidSecurityToken.Expired', 'Specified SecurityToken is expired.', action); return false;
    }
    return true;
  }

  function issueCredential(source, lifetimeS) {
    const now = Date.now();
    // whole seconds, as Expiration says: valid for at least lifetimeS
    const expiresAt = Math.ceil((now + lifetimeS * 1000) / 1000) * 1000;
    const c = { issued: true, source, accessKeyId: 'STS.' + randomId(25, ALNUM), secret: randomId(44, ALNUM),
      token: 'CAIS' + crypto.randomBytes(600).toString('base64'), issuedAt: now, expiresAt };
    issued.set(c.accessKeyId, c);
    while (issued.size > ISSUED_MEMORY) issued.delete(issued.keys().next().value);
    rememberSecret(c.secret, c.token);
    credStats().issued[source] = (credStats().issued[source] || 0) + 1;
    return c;
  }

  function credentialBody(c) {
    return { AccessKeyId: c.accessKeyId, AccessKeySecret: c.secret, SecurityToken: c.token, Expiration: isoSeconds(c.expiresAt) };
  }

  function sendText(res, status, text) {
    res.writeHead(status, { 'Content-Type': 'text/plain;charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  function stsError(res, status, code, message, action) {
    count(action, code);
    send(res, status, { RequestId: requestId(), HostId: 'sts.aliyuncs.com', Code: code, Message: message,
      Recommend: 'https://api.aliyun.com/troubleshoot?q=' + code });
  }

  // The refusal switch: true when the service is switched off and the answer has been sent.
  function refusedNow(service, res, action) {
    if (!cred.refuse || !cred.refuseServices.includes(service)) return false;
    credStats().refused++;
    const status = cred.refuseStatus;
    const code = status === 500 ? 'InternalError' : status === 503 ? 'ServiceUnavailable' : 'Refused';
    const message = 'The request has failed due to a temporary failure of the server.';
    if (service === 'metadata') sendText(res, status, status >= 500 ? 'Service Unavailable' : 'Refused');
    else if (service === 'sts') stsError(res, status, code, message, action);
    else send(res, status, { Code: code, Message: message });
    return true;
  }

  function metadataTokenValid(req) {
    const t = req.headers['x-aliyun-ecs-metadata-token'];
    if (!t || !metadataTokens.has(t)) return false;
    if (Date.now() >= metadataTokens.get(t)) { metadataTokens.delete(t); return false; }
    return true;
  }

  function metadataService(req, path, res) {
    const c = credStats();
    if (path === '/latest/api/token') {
      c.calls.metadataToken++;
      if (cred.imds === 'v1') return sendText(res, 404, 'Not Found');
      if (req.method !== 'PUT') return sendText(res, 405, 'Method Not Allowed');
      if (refusedNow('metadata', res)) return;
      const h = req.headers['x-aliyun-ecs-metadata-token-ttl-seconds'];
      const ttl = /^\d{1,5}$/.test(h || '') ? Number(h) : 0;
      if (ttl < 1 || ttl > 21600) return sendText(res, 400, 'Bad Request');
      const token = crypto.randomBytes(36).toString('base64url');
      metadataTokens.set(token, Date.now() + ttl * 1000);
      while (metadataTokens.size > METADATA_TOKEN_MEMORY) metadataTokens.delete(metadataTokens.keys().next().value);
      rememberSecret(token);
      c.issued.metadataToken = (c.issued.metadataToken || 0) + 1;
      return sendText(res, 200, token);
    }
    const prefix = '/latest/meta-data/ram/security-credentials/';
    const which = path === prefix ? 'metadataRoleName' : path.startsWith(prefix) ? 'metadataCredentials' : 'metadataOther';
    c.calls[which]++;
    if (req.method !== 'GET') return sendText(res, 405, 'Method Not Allowed');
    if (refusedNow('metadata', res)) return;
    const hasToken = req.headers['x-aliyun-ecs-metadata-token'] !== undefined;
    if (cred.imds === 'v1' ? hasToken : (hasToken || cred.imds === 'v2') && !metadataTokenValid(req)) {
      c.metadataUnauthorized++; return sendText(res, 401, 'Unauthorized');
    }
    if (!hasToken) c.metadataWithoutToken++;
    if (which === 'metadataOther') return sendText(res, 404, 'Not Found');
    if (which === 'metadataRoleName') return sendText(res, 200, cred.roleName);
    let role;
    try { role = decodeURIComponent(path.slice(prefix.length)); } catch (e) { role = null; }
    if (role !== cred.roleName) return sendText(res, 404, 'Not Found');
    const issuedCred = issueCredential('metadataCredentials', cred.ttlS);
    const body = { ...credentialBody(issuedCred), LastUpdated: isoSeconds(issuedCred.issuedAt), Code: 'Success' };
    const text = JSON.stringify(body);
    res.writeHead(200, { 'Content-Type': 'text/plain;charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  function credentialsUri(req, res) {
    credStats().calls.credentialsUri++;
    if (req.method !== 'GET') return send(res, 405, { Code: 'MethodNotAllowed', Message: 'GET only.' });
    if (refusedNow('uri', res)) return;
    send(res, 200, { Code: 'Success', ...credentialBody(issueCredential('credentialsUri', cred.ttlS)) });
  }

  // STS 2015-04-01, RPC style; parameters from the query and the form body together (the SDKs put
  // the common ones in the query and the action's in the body, and sign them all).
  function sts(method, p, res) {
    const action = p.Action;
    credStats().calls[action]++;
    if (refusedNow('sts', res, action)) return;
    const oidc = action === 'AssumeRoleWithOIDC';
    if (!oidc) {
      if (!authenticate(method, p, res)) return;
      const caller = opts.accessKeys[p.AccessKeyId];
      if (!caller || caller.securityToken !== undefined || !stsCallerIds().includes(p.AccessKeyId)) {
        return stsError(res, 403, 'NoPermission', 'You are not authorized to do this action. You should be authorized by RAM.', action);
      }
    }
    if (p.Format && p.Format !== 'JSON') return stsError(res, 400, 'InvalidParameter.Format', 'Only JSON answers are emulated.', action);
    if (!p.RoleArn) return stsError(res, 400, 'MissingRoleArn', 'RoleArn is mandatory for this action.', action);
    if (oidc && !p.OIDCProviderArn) return stsError(res, 400, 'MissingOIDCProviderArn', 'OIDCProviderArn is mandatory for this action.', action);
    if (oidc && !p.OIDCToken) return stsError(res, 401, 'AuthenticationFail.OIDCToken.Invalid', 'The OIDCToken can not empty.', action);
    if (!p.RoleSessionName) return stsError(res, 400, 'MissingRoleSessionName', 'RoleSessionName is mandatory for this action.', action);
    if (!ROLE_SESSION_NAME_RE.test(p.RoleSessionName)) return stsError(res, 400, 'InvalidParameter.RoleSessionName', 'The parameter RoleSessionName is wrongly formed.', action);
    let duration = 3600;
    if (p.DurationSeconds !== undefined) {
      duration = /^\d{1,6}$/.test(p.DurationSeconds) ? Number(p.DurationSeconds) : -1;
      if (duration < 900 || duration > cred.maxSessionS) {
        return stsError(res, 400, 'InvalidParameter.DurationSeconds', `The Min/Max value of DurationSeconds is 15min/${cred.maxSessionS / 3600}hr.`, action);
      }
    }
    if (p.Policy !== undefined) {
      let doc = null;
      try { doc = JSON.parse(p.Policy); } catch (e) { doc = null; }
      if (p.Policy.length > POLICY_MAX) return stsError(res, 400, 'InvalidParameter.PolicyLength', `The policy is longer than ${POLICY_MAX} characters.`, action);
      if (!doc || typeof doc !== 'object' || Array.isArray(doc) || doc.Version !== '1' || !Array.isArray(doc.Statement)) {
        return stsError(res, 400, 'InvalidParameter.PolicyGrammar', 'The parameter Policy has a syntax error.', action);
      }
    }
    if (p.ExternalId !== undefined && (oidc || !EXTERNAL_ID_RE.test(p.ExternalId))) {
      return stsError(res, 400, 'InvalidParameter.ExternalId', 'The parameter ExternalId is wrongly formed.', action);
    }
    if (oidc) {
      if (p.OIDCProviderArn !== cred.oidcProviderArn) return stsError(res, 401, 'AuthenticationFail.NoPermission', 'No such OIDC Provider registered.', action);
      if (!safeEqual(p.OIDCToken, cred.oidcToken)) {
        credStats().oidcTokenRefused++;
        return stsError(res, 401, 'AuthenticationFail.OIDCToken.Invalid', 'The Jwt content is invalid that cannot be recognized.', action);
      }
      credStats().oidcAccepted++;
    }
    if (p.RoleArn !== cred.roleArn) return stsError(res, 404, 'EntityNotExist.Role', 'The role not exists: ' + p.RoleArn + '.', action);
    if (!oidc && cred.externalId && !safeEqual(p.ExternalId || '', cred.externalId)) {
      return stsError(res, 403, 'NoPermission', 'You are not authorized to do this action. The role\'s trust policy asks for another ExternalId.', action);
    }
    credStats().lastSts[action] = { RoleArn: p.RoleArn, RoleSessionName: p.RoleSessionName, DurationSeconds: p.DurationSeconds,
      Policy: p.Policy, ExternalId: p.ExternalId,
      OIDCTokenSha256: oidc ? crypto.createHash('sha256').update(p.OIDCToken).digest('hex').slice(0, 16) : undefined };
    // the emulator's ttlS caps the lifetime, so tests see expiry within seconds
    const c = issueCredential(action, Math.min(duration, cred.ttlS));
    count(action, 'Success');
    const body = { RequestId: requestId(),
      AssumedRoleUser: { Arn: cred.roleArn + '/' + p.RoleSessionName, AssumedRoleId: cred.roleId + ':' + p.RoleSessionName },
      Credentials: credentialBody(c) };
    if (oidc) body.OIDCTokenInfo = oidcTokenInfo(cred.oidcToken);
    send(res, 200, body);
  }

  function credentialsView() {
    return { roleName: cred.roleName, roleArn: cred.roleArn, oidcProviderArn: cred.oidcProviderArn, oidcToken: cred.oidcToken,
      uriPath: cred.uriPath, ttlS: cred.ttlS, maxSessionS: cred.maxSessionS, stsCallers: stsCallerIds(), imds: cred.imds, externalId: cred.externalId,
      refuse: cred.refuse, status: cred.refuseStatus, services: cred.refuseServices };
  }

  function setRefusal(refuse, status, services) {
    cred.refuse = !!refuse;
    if (status !== undefined) cred.refuseStatus = status;
    if (services !== undefined) cred.refuseServices = services.filter((s) => CREDENTIAL_SERVICES.includes(s));
  }

  function expireAllIssued() {
    const now = Date.now();
    for (const c of issued.values()) if (c.expiresAt > now) c.expiresAt = now;
  }

  function issuedView() {
    const now = Date.now();
    return [...issued.values()].map((c) => ({ AccessKeyId: c.accessKeyId, source: c.source, Expiration: isoSeconds(c.expiresAt), expired: now >= c.expiresAt }));
  }

  function allIssuedSecrets() {
    return [cred.oidcToken, ...issuedSecretLog];
  }

  // Returns true when it answered the request.
  function credentialRoute(req, url, body, res) {
    credStats();
    const path = url.pathname;
    if (path === '/_emulator/credentials') {
      if (req.method === 'GET') { send(res, 200, credentialsView()); return true; }
      if (req.method !== 'POST') { send(res, 405, { error: 'GET or POST' }); return true; }
      let f;
      try { f = JSON.parse(body || '{}'); } catch (e) { send(res, 400, { error: 'bad json' }); return true; }
      if (typeof f.refuse === 'boolean') setRefusal(f.refuse, f.status, f.services);
      else if (typeof f.status === 'number') cred.refuseStatus = f.status;
      if (typeof f.ttlS === 'number' && f.ttlS > 0) cred.ttlS = f.ttlS;
      if (f.stsCallers === null || Array.isArray(f.stsCallers)) cred.stsCallers = f.stsCallers;
      if (IMDS_MODES.includes(f.imds)) cred.imds = f.imds;
      if (typeof f.oidcToken === 'string' && f.oidcToken) { rememberSecret(cred.oidcToken); cred.oidcToken = f.oidcToken; }
      if (f.expireAll === true) expireAllIssued();
      send(res, 200, credentialsView());
      return true;
    }
    if (path === '/_emulator/issued-secrets' && req.method === 'GET') { send(res, 200, allIssuedSecrets()); return true; }
    if (path === '/_emulator/issued-credentials' && req.method === 'GET') { send(res, 200, issuedView()); return true; }
    if (path === '/latest/api/token' || path.startsWith('/latest/')) { metadataService(req, path, res); return true; }
    if (path === cred.uriPath) { credentialsUri(req, res); return true; }
    if (path === '/' && (req.method === 'GET' || req.method === 'POST')) {
      let p;
      try {
        p = { ...parseForm(url.search.slice(1)), ...(req.method === 'POST' ? parseForm(body) : {}) };
      } catch (e) {
        return false; // the gateway's own parser answers malformed requests
      }
      if (p.Version === STS_API_VERSION && STS_ACTIONS.has(p.Action)) { sts(req.method, p, res); return true; }
    }
    return false;
  }

  const statsWithoutCredentials = api.stats;
  Object.assign(api, {
    stats: () => { credStats(); return statsWithoutCredentials(); },
    // options.credentials, as set now (oidcToken included: test support)
    credentialsConfig: () => JSON.parse(JSON.stringify(credentialsView())),
    // refuse: metadata service, STS and credentials URI answer `status` (default 503) until turned back;
    // services: a subset of ['metadata', 'sts', 'uri'] (default all)
    setCredentialsRefusal(refuse, status, services) { setRefusal(refuse, status, services); },
    setCredentialTtl(s) { cred.ttlS = s; },
    setStsCallers(ids) { cred.stsCallers = ids; },
    // the metadata service's IMDS mode: 'v2', 'v1' or 'optional'
    setImdsMode(mode) { if (!IMDS_MODES.includes(mode)) throw new Error('imds mode ' + mode); cred.imds = mode; },
    // the OIDC token STS accepts from now on (the old one is refused): a rotation
    setOidcToken(token) { rememberSecret(cred.oidcToken); cred.oidcToken = token; },
    // the SHA-256 prefix lastSts records for a token
    oidcTokenSha256: (token) => crypto.createHash('sha256').update(token).digest('hex').slice(0, 16),
    // every credential issued so far is expired from now on (no waiting in tests)
    expireIssuedCredentials: expireAllIssued,
    issuedCredentials: issuedView,
    credentialStats: () => JSON.parse(JSON.stringify(credStats())),
    // the OIDC token, every issued AccessKeySecret and SecurityToken and IMDS token: none may be logged
    allIssuedSecrets,
  });

  // ---------------------------------------------------------------------------------------------
  // Batch actions (IoT Platform API 2018-01-20). Parameter names and answer nesting are those of
  // the official SDK models (@alicloud/iot20180120 3.0.11 in bench/seed; InvalidDetailList and
  // RepeatedDeviceNameList from Alibaba's newer generated models), documented limits and QPS:
  //   BatchQueryDeviceDetail          ProductKey, DeviceName.N (1..100)         -> Data.Data[]        5 QPS
  //   BatchCheckDeviceNames           ProductKey, DeviceName.N or DeviceNameList.N.DeviceName
  //                                   (+ .DeviceNickname; the list wins); the first 10 000 are kept,
  //                                   the rest dropped, as documented          -> Data.ApplyId      10 QPS
  //   QueryBatchRegisterDeviceStatus  ProductKey, ApplyId -> Data.Status, ValidList.Name[], InvalidList.Name[],
  //                                   InvalidDetailList.invalidDetailList[]                           30 QPS
  //   BatchRegisterDeviceWithApplyId  ProductKey, ApplyId (only after CHECK_SUCCESS) -> Data.ApplyId  500 QPS
  //   QueryPageByApplyId              ApplyId, PageSize (1..50, default 10), CurrentPage (default 1)
  //                                   -> ApplyDeviceList.ApplyDeviceInfo[], Page, PageSize, PageCount, Total
  //                                   (top level, no Data); after CREATE_SUCCESS / CREATE_FAILED      50 QPS
  // Stages: CHECK lasts checkDurationMs (default 500), then CHECK_SUCCESS or CHECK_FAILED (names
  // malformed, existing at the end of the check, repeated in the list, bad nicknames); CREATE lasts
  // createDurationMs (default 1000), then the devices exist (ordinary devices, UNACTIVE). A name
  // registered meanwhile (RegisterDevice after the check) is not created: CREATE_FAILED, that name in
  // InvalidList / InvalidDetailList, the others created. A duration applies to stages started after
  // it is set. stageJitter (a fraction, 0 by default, at most 0.9) draws each stage's length
  // uniformly within duration × (1 ± jitter), as the real platform's minutes vary; the drawn
  // lengths and the stages' start and end times are in the apply's view (GET /_emulator/batch?applyId=N:
  // checkMs, createMs, checkStartedAt, checkEndedAt, createStartedAt, createEndedAt, epoch ms).
  // ApplyIds live here, not in the plugin: a restarted plugin (new connections, new nonces) may
  // query and continue an apply it started before; /_emulator/reset keeps them (only
  // forgetApplies, a platform restart, drops them).
  // stageStuck (true, 'check' or 'create') keeps stages from finishing until turned off;
  // then the stuck ones finish at once. forgetApplies (a platform restart) drops every ApplyId;
  // stageFail ('check' or 'create', false by default) makes that stage end failed for every name,
  // as a platform that fails a batch does: CHECK_FAILED with each name invalid, or CREATE_FAILED
  // with none created; a stage ending while it is set fails.
  // deniedActions (any action names) are refused as RAM does (403 Forbidden.RAM). Quota: opts.quota by action name, as for the other actions.
  // Control: GET /_emulator/batch[?applyId=N], POST /_emulator/batch {checkDurationMs,
  // createDurationMs (or stageCheckS, stageCreateS in seconds), stageJitter, stageStuck, stageFail, forgetApplies, deniedActions}; the same keys in POST /_emulator/faults; POST /_emulator/reset
  // turns stageStuck off. Counters under stats.batch.
  // Size: a form body (signature 1.0 POST, or V3 with a form body) may be MAX_BODY_BYTES; parameters in
  // the query string (as the SDKs send them) are bounded by Node's 16 KB header limit, a few hundred names.
  // ---------------------------------------------------------------------------------------------
  const BATCH_QUERY_MAX = 100;
  const BATCH_CHECK_MAX = 10000;
  const PAGE_SIZE_MAX = 50;
  const PAGE_SIZE_DEFAULT = 10;
  const NICKNAME_CHARS_RE = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}A-Za-z0-9_]+$/u;
  const NICKNAME_WIDE_RE = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
  const BATCH_ERR = {
    name: 'The device name is illegal.',
    nickname: 'The nick name is illegal.',
    exists: 'The device name already exists.',
    failed: 'The platform failed this stage.',
    repeated: 'The device name is repeated.',
  };

  const durationOr = (v, def) => (typeof v === 'number' && v >= 0 && Number.isFinite(v) ? v : def);
  const jitterOr = (v, def) => (typeof v === 'number' && v >= 0 && v <= 0.9 ? v : def);
  const stuckOf = (v) => (v === true || v === 'both' || v === 'true' ? true : v === 'check' || v === 'create' ? v : false);
  const batchCfg = {
    checkDurationMs: durationOr(options.checkDurationMs, 500),
    createDurationMs: durationOr(options.createDurationMs, 1000),
    stageJitter: jitterOr(options.stageJitter, 0),
    stageStuck: stuckOf(options.stageStuck),
    stageFail: false,
    deniedActions: Array.isArray(options.deniedActions) ? options.deniedActions.map(String) : [],
  };
  const applies = new Map();    // ApplyId (number) -> apply
  const batchTimers = new Set();
  let nextApplyId = 1000000 + crypto.randomInt(8000000);

  // stats.batch, made again after resetStats() (every request passes batchRoute; api.stats() asks too).
  // devicesServed: per action, the devices (names) the answers carried: BatchQueryDeviceDetail the
  // devices returned, BatchCheckDeviceNames the names taken, QueryBatchRegisterDeviceStatus the names
  // in ValidList + InvalidList, BatchRegisterDeviceWithApplyId the names sent to creation,
  // QueryPageByApplyId the devices on the page; lastDevicesServed / maxDevicesServed per call.
  function batchStats() {
    if (!stats.batch) {
      stats.batch = { devicesServed: {}, lastDevicesServed: {}, maxDevicesServed: {}, appliesCreated: 0,
        stagesEnded: { CHECK_SUCCESS: 0, CHECK_FAILED: 0, CREATE_SUCCESS: 0, CREATE_FAILED: 0 },
        devicesCreated: 0, stagesStuck: 0, registerRefused: 0 };
    }
    return stats.batch;
  }

  function served(action, n) {
    const b = batchStats();
    b.devicesServed[action] = (b.devicesServed[action] || 0) + n;
    b.lastDevicesServed[action] = n;
    b.maxDevicesServed[action] = Math.max(b.maxDevicesServed[action] || 0, n);
  }

  const stuckAt = (stage) => batchCfg.stageStuck === true || batchCfg.stageStuck === stage;

  // Values of Name.1, Name.2 ... in the order of N (N from 1, as the SDKs number them).
  function repeatList(p, prefix) {
    const out = [];
    for (const k of Object.keys(p)) {
      if (!k.startsWith(prefix + '.')) continue;
      const n = k.slice(prefix.length + 1);
      if (/^[1-9]\d{0,6}$/.test(n)) out.push([Number(n), p[k]]);
    }
    return out.sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  }

  // DeviceNameList.N.DeviceName / .DeviceNickname, in the order of N; null when an entry has no DeviceName.
  function deviceNameList(p) {
    const byN = new Map();
    for (const k of Object.keys(p)) {
      const m = /^DeviceNameList\.([1-9]\d{0,6})\.(DeviceName|DeviceNickname)$/.exec(k);
      if (!m) continue;
      const e = byN.get(Number(m[1])) || {};
      e[m[2]] = p[k];
      byN.set(Number(m[1]), e);
    }
    const out = [];
    for (const n of [...byN.keys()].sort((a, b) => a - b)) {
      const e = byN.get(n);
      if (e.DeviceName === undefined) return null;
      out.push({ DeviceName: e.DeviceName, Nickname: e.DeviceNickname || '' });
    }
    return out;
  }

  function nicknameValid(s) {
    if (!NICKNAME_CHARS_RE.test(s)) return false;
    let width = 0;
    for (const c of s) width += NICKNAME_WIDE_RE.test(c) ? 2 : 1;
    return width >= 4 && width <= 64;
  }

  // ProductKey present and known; false when the refusal has been sent.
  function batchProduct(p, res, action) {
    if (!p.ProductKey) { businessError(res, 'iot.prod.NullProductKey', 'ProductKey cannot be empty.', action); return false; }
    if (!opts.products.includes(p.ProductKey)) { businessError(res, 'iot.prod.NotExistedProduct', 'product does not exist', action); return false; }
    return true;
  }

  // The apply named by ApplyId (of ProductKey when given); null when the refusal has been sent.
  function applyOf(p, res, action) {
    if (p.ApplyId === undefined || p.ApplyId === '') { businessError(res, 'iot.device.NullApplyId', 'ApplyId cannot be empty.', action); return null; }
    if (!/^\d{1,15}$/.test(p.ApplyId)) { businessError(res, 'iot.device.InvalidFormattedApplyId', 'The ApplyId is incorrect.', action); return null; }
    const a = applies.get(Number(p.ApplyId));
    if (!a || (p.ProductKey !== undefined && a.ProductKey !== p.ProductKey)) {
      businessError(res, 'iot.device.DeviceApplyIsNotFound', 'The ApplyId is not found.', action); return null;
    }
    return a;
  }

  function newBatchDevice(productKey, name, nickname) {
    const now = new Date();
    return { IotId: randomId(20, ALNUM) + '000100', ProductKey: productKey, DeviceName: name,
      DeviceSecret: crypto.randomBytes(16).toString('hex'), Nickname: nickname || '', Status: 'UNACTIVE',
      GmtCreate: now.toUTCString(), UtcCreate: now.toISOString() };
  }

  // A stage's length: duration × (1 ± jitter), drawn uniformly (jitter 0: the duration itself).
  function stageMs(ms) {
    const j = batchCfg.stageJitter;
    return j > 0 ? Math.max(0, ms * (1 - j + 2 * j * Math.random())) : ms;
  }

  function scheduleStage(a, stage, base) {
    const end = stage === 'check' ? endCheck : endCreate;
    const ms = stageMs(base);
    a[stage + 'Ms'] = ms;
    a[stage + 'StartedAt'] = Date.now();
    if (ms <= 0) return end(a);
    const t = setTimeout(() => { batchTimers.delete(t); end(a); }, ms);
    if (t.unref) t.unref();
    batchTimers.add(t);
  }

  function markStuck(a, stage) {
    if (a.stuck !== stage) batchStats().stagesStuck++;
    a.stuck = stage;
  }

  // The check, as of its end: every name well formed, not an existing device, not repeated, its nickname valid.
  function endCheck(a) {
    if (a.Status !== 'CHECK') return;
    if (stuckAt('check')) return markStuck(a, 'check');
    a.stuck = null;
    const seen = new Set();
    const valid = [];
    const invalid = [];
    for (const e of a.entries) {
      const why = [];
      if (!DEVICE_NAME_RE.test(e.DeviceName)) why.push(BATCH_ERR.name);
      else if (devices.has(a.ProductKey + '/' + e.DeviceName)) why.push(BATCH_ERR.exists);
      if (seen.has(e.DeviceName)) why.push(BATCH_ERR.repeated);
      seen.add(e.DeviceName);
      if (e.Nickname && !nicknameValid(e.Nickname)) why.push(BATCH_ERR.nickname);
      if (batchCfg.stageFail === 'check') why.push(BATCH_ERR.failed);
      if (why.length) invalid.push({ DeviceName: e.DeviceName, ErrorMsg: why.join('|'), NickName: e.Nickname });
      else valid.push(e.DeviceName);
    }
    a.checkResult = { valid, invalid };
    a.checkEndedAt = Date.now();
    a.Status = invalid.length ? 'CHECK_FAILED' : 'CHECK_SUCCESS';
    batchStats().stagesEnded[a.Status]++;
  }

  // Creation, as of its end: a name that exists by now (registered meanwhile) fails, the others are created.
  function endCreate(a) {
    if (a.Status !== 'CREATE') return;
    if (stuckAt('create')) return markStuck(a, 'create');
    a.stuck = null;
    const valid = [];
    const invalid = [];
    for (const e of a.entries) {
      const key = a.ProductKey + '/' + e.DeviceName;
      if (devices.has(key)) { invalid.push({ DeviceName: e.DeviceName, ErrorMsg: BATCH_ERR.exists, NickName: e.Nickname }); continue; }
      if (batchCfg.stageFail === 'create') { invalid.push({ DeviceName: e.DeviceName, ErrorMsg: BATCH_ERR.failed, NickName: e.Nickname }); continue; }
      const d = newBatchDevice(a.ProductKey, e.DeviceName, e.Nickname);
      devices.set(key, d);
      a.created.push({ device: d, DeviceId: randomId(20, ALNUM) });
      valid.push(e.DeviceName);
    }
    a.createResult = { valid, invalid };
    a.createEndedAt = Date.now();
    a.Status = invalid.length ? 'CREATE_FAILED' : 'CREATE_SUCCESS';
    const b = batchStats();
    b.stagesEnded[a.Status]++;
    b.devicesCreated += valid.length;
  }

  function resumeStuck() {
    for (const a of applies.values()) {
      if (a.stuck === 'check' && !stuckAt('check')) endCheck(a);
      else if (a.stuck === 'create' && !stuckAt('create')) endCreate(a);
    }
  }

  function batchQueryDeviceDetail(p, res) {
    const action = 'BatchQueryDeviceDetail';
    if (!batchProduct(p, res, action)) return;
    const names = repeatList(p, 'DeviceName');
    if (!names.length) return businessError(res, 'iot.device.NoneDeviceNameElement', 'The device name list cannot be empty.', action);
    if (names.length > BATCH_QUERY_MAX) {
      return businessError(res, 'iot.device.DeviceCountExceeded', 'Number of devices requested exceeds the maximum limit (' + BATCH_QUERY_MAX + ').', action);
    }
    const list = [];
    for (const name of new Set(names)) {
      const d = devices.get(p.ProductKey + '/' + name);
      if (!d) continue; // names that do not exist are left out
      list.push({ DeviceName: d.DeviceName, DeviceSecret: d.DeviceSecret, FirmwareVersion: '', GmtActive: '', GmtCreate: d.GmtCreate,
        IotId: d.IotId, Nickname: d.Nickname, NodeType: 0, ProductKey: d.ProductKey, ProductName: 'emulated product',
        Region: opts.regionId || 'cn-shanghai', Status: d.Status, UtcActive: '', UtcCreate: d.UtcCreate });
    }
    served(action, list.length);
    count(action, 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Data: { Data: list } });
  }

  function batchCheckDeviceNames(p, res) {
    const action = 'BatchCheckDeviceNames';
    if (!batchProduct(p, res, action)) return;
    let entries = deviceNameList(p);
    if (entries === null) return businessError(res, 'iot.device.NullDeviceName', 'Device name cannot be empty.', action);
    if (!entries.length) entries = repeatList(p, 'DeviceName').map((n) => ({ DeviceName: n, Nickname: '' }));
    if (!entries.length) return businessError(res, 'iot.device.NoneDeviceNameElement', 'The device name list cannot be empty.', action);
    entries = entries.slice(0, BATCH_CHECK_MAX); // "data beyond the limit is discarded"
    const a = { ApplyId: nextApplyId++, ProductKey: p.ProductKey, entries, Status: 'CHECK', stuck: null,
      checkResult: null, createResult: null, created: [] };
    applies.set(a.ApplyId, a);
    batchStats().appliesCreated++;
    served(action, entries.length);
    // what is plain from the request at once; the check's verdict comes from QueryBatchRegisterDeviceStatus
    const seen = new Set();
    const repeated = [];
    for (const e of entries) { if (seen.has(e.DeviceName)) repeated.push(e.DeviceName); seen.add(e.DeviceName); }
    const data = { ApplyId: a.ApplyId,
      InvalidDeviceNameList: { InvalidDeviceName: entries.filter((e) => !DEVICE_NAME_RE.test(e.DeviceName)).map((e) => e.DeviceName) },
      InvalidDeviceNicknameList: { InvalidDeviceNickname: entries.filter((e) => e.Nickname && !nicknameValid(e.Nickname)).map((e) => e.Nickname) },
      RepeatedDeviceNameList: { RepeatDevieNameList: repeated } };
    count(action, 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Data: data });
    scheduleStage(a, 'check', batchCfg.checkDurationMs);
  }

  function queryBatchRegisterDeviceStatus(p, res) {
    const action = 'QueryBatchRegisterDeviceStatus';
    if (!batchProduct(p, res, action)) return;
    const a = applyOf(p, res, action);
    if (!a) return;
    // lists only for the *_FAILED verdicts; in progress and *_SUCCESS they are empty, as documented
    const r = a.Status === 'CHECK_FAILED' ? a.checkResult : a.Status === 'CREATE_FAILED' ? a.createResult : null;
    const data = { Status: a.Status, ValidList: { Name: r ? r.valid.slice() : [] },
      InvalidList: { Name: r ? r.invalid.map((x) => x.DeviceName) : [] },
      InvalidDetailList: { invalidDetailList: r ? r.invalid.map((x) => ({ ...x })) : [] } };
    served(action, data.ValidList.Name.length + data.InvalidList.Name.length);
    count(action, 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Data: data });
  }

  function batchRegisterDeviceWithApplyId(p, res) {
    const action = 'BatchRegisterDeviceWithApplyId';
    if (!batchProduct(p, res, action)) return;
    const a = applyOf(p, res, action);
    if (!a) return;
    if (a.Status !== 'CHECK_SUCCESS') {
      batchStats().registerRefused++;
      if (a.Status === 'CREATE') return businessError(res, 'iot.device.CreateDeviceTaskIsRunning', 'The device creation task is still in progress.', action);
      const why = a.Status === 'CHECK' ? 'the device names are still being checked'
        : a.Status === 'CHECK_FAILED' ? 'some device names failed the check' : 'the devices were created already';
      return businessError(res, 'iot.device.IncorrentDeviceApplyInfo', 'The device application information is not correct: ' + why + '.', action);
    }
    a.Status = 'CREATE';
    served(action, a.entries.length);
    count(action, 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Data: { ApplyId: a.ApplyId } });
    scheduleStage(a, 'create', batchCfg.createDurationMs);
  }

  function queryPageByApplyId(p, res) {
    const action = 'QueryPageByApplyId';
    const a = applyOf({ ApplyId: p.ApplyId }, res, action); // no ProductKey in this action
    if (!a) return;
    const int = (v, def) => (v === undefined || v === '' ? def : /^\d{1,9}$/.test(v) ? Number(v) : NaN);
    const size = int(p.PageSize, PAGE_SIZE_DEFAULT);
    const page = int(p.CurrentPage, 1);
    if (!(size >= 1 && size <= PAGE_SIZE_MAX) || !(page >= 1)) {
      return businessError(res, 'iot.common.InvalidPageParams', 'The specified page size or page number is invalid (PageSize 1..' + PAGE_SIZE_MAX + ', CurrentPage from 1).', action);
    }
    if (a.Status === 'CREATE') return businessError(res, 'iot.device.CreateDeviceTaskIsRunning', 'The device creation task is still in progress.', action);
    if (a.Status !== 'CREATE_SUCCESS' && a.Status !== 'CREATE_FAILED') {
      return businessError(res, 'iot.device.IncorrentDeviceApplyInfo', 'The device application information is not correct: no devices were created for it yet.', action);
    }
    const total = a.created.length;
    const list = a.created.slice((page - 1) * size, page * size).map((c) => ({ DeviceId: c.DeviceId, DeviceName: c.device.DeviceName,
      DeviceSecret: c.device.DeviceSecret, IotId: c.device.IotId }));
    served(action, list.length);
    count(action, 'Success');
    send(res, 200, { RequestId: requestId(), Success: true, Page: page, PageSize: size, PageCount: Math.ceil(total / size), Total: total,
      ApplyDeviceList: { ApplyDeviceInfo: list } });
  }

  const BATCH_HANDLERS = {
    BatchQueryDeviceDetail: batchQueryDeviceDetail,
    BatchCheckDeviceNames: batchCheckDeviceNames,
    QueryBatchRegisterDeviceStatus: queryBatchRegisterDeviceStatus,
    BatchRegisterDeviceWithApplyId: batchRegisterDeviceWithApplyId,
    QueryPageByApplyId: queryPageByApplyId,
  };

  // From handleCall, after the gateway's checks and the quota: true when it answered.
  function batchAction(p, res) {
    if (!Object.prototype.hasOwnProperty.call(BATCH_HANDLERS, p.Action)) return false;
    BATCH_HANDLERS[p.Action](p, res);
    return true;
  }

  function setBatch(f = {}) {
    if (f.checkDurationMs !== undefined) batchCfg.checkDurationMs = durationOr(f.checkDurationMs, batchCfg.checkDurationMs);
    if (f.createDurationMs !== undefined) batchCfg.createDurationMs = durationOr(f.createDurationMs, batchCfg.createDurationMs);
    if (f.stageJitter !== undefined) batchCfg.stageJitter = jitterOr(f.stageJitter, batchCfg.stageJitter);
    // in seconds, as the platform's stages are told (these win over the ms keys)
    if (f.stageCheckS !== undefined) batchCfg.checkDurationMs = durationOr(f.stageCheckS * 1000, batchCfg.checkDurationMs);
    if (f.stageCreateS !== undefined) batchCfg.createDurationMs = durationOr(f.stageCreateS * 1000, batchCfg.createDurationMs);
    if (f.stageStuck !== undefined) { batchCfg.stageStuck = stuckOf(f.stageStuck); resumeStuck(); }
    if (Array.isArray(f.deniedActions)) batchCfg.deniedActions = f.deniedActions.map(String);
    if (f.stageFail !== undefined) batchCfg.stageFail = f.stageFail === 'check' || f.stageFail === 'create' ? f.stageFail : false;
    if (f.forgetApplies === true) {
      // the platform restarted: every ApplyId it had given is unknown from now on
      for (const t of batchTimers) clearTimeout(t);
      batchTimers.clear();
      applies.clear();
      batchStats().appliesForgotten = (batchStats().appliesForgotten || 0) + 1;
    }
    return batchView();
  }

  function applyView(a) {
    return JSON.parse(JSON.stringify({ ApplyId: a.ApplyId, ProductKey: a.ProductKey, Status: a.Status, stuck: a.stuck,
      DeviceNames: a.entries.map((e) => e.DeviceName), checkResult: a.checkResult, createResult: a.createResult,
      created: a.created.map((c) => c.device.DeviceName),
      checkMs: a.checkMs, createMs: a.createMs, checkStartedAt: a.checkStartedAt, checkEndedAt: a.checkEndedAt,
      createStartedAt: a.createStartedAt, createEndedAt: a.createEndedAt }));
  }

  function batchView() {
    return { ...batchCfg, applies: [...applies.values()].map((a) => ({ ApplyId: a.ApplyId, ProductKey: a.ProductKey, Status: a.Status,
      names: a.entries.length, stuck: a.stuck })) };
  }

  // Returns true when it answered the request; /_emulator/faults and /_emulator/reset go on to handleControl.
  function batchRoute(req, url, body, res) {
    batchStats();
    const path = url.pathname;
    if (path === '/_emulator/batch') {
      if (req.method === 'GET') {
        const id = url.searchParams.get('applyId');
        if (id === null) { send(res, 200, batchView()); return true; }
        const a = applies.get(Number(id));
        if (a) send(res, 200, applyView(a)); else send(res, 404, { error: 'no such apply' });
        return true;
      }
      if (req.method !== 'POST') { send(res, 405, { error: 'GET or POST' }); return true; }
      let f;
      try { f = JSON.parse(body || '{}'); } catch (e) { send(res, 400, { error: 'bad json' }); return true; }
      send(res, 200, setBatch(f || {}));
      return true;
    }
    if (req.method === 'POST' && path === '/_emulator/faults') {
      let f = null;
      try { f = JSON.parse(body); } catch (e) { f = null; }
      if (f && typeof f === 'object') setBatch(f);
    }
    if (req.method === 'POST' && path === '/_emulator/reset') setBatch({ stageStuck: false, stageFail: false });
    return false;
  }

  const statsWithoutBatch = api.stats;
  const closeWithoutBatch = api.close;
  Object.assign(api, {
    stats: () => { batchStats(); return statsWithoutBatch(); },
    close: () => { for (const t of batchTimers) clearTimeout(t); batchTimers.clear(); return closeWithoutBatch(); },
    // { checkDurationMs, createDurationMs, stageJitter, stageStuck: false | true | 'check' | 'create' }; returns batchConfig()
    setBatch,
    batchConfig: batchView,
    // one apply as the emulator holds it (test support), or null
    batchApply: (applyId) => { const a = applies.get(Number(applyId)); return a ? applyView(a) : null; },
  });

  return api;
}

module.exports = { createEmulator, sign, canonicalQuery, percentEncode, parseForm, sha256Hex, canonicalRequestV3, signV3 };

// Documented per-account QPS of the actions emulated (quota stays off unless given: options.quota,
// POST /_emulator/quota, --quota; pass this or a part of it to enforce them).
const DOCUMENTED_QPS = Object.freeze({ RegisterDevice: 30, QueryDeviceDetail: 50, BatchQueryDeviceDetail: 5, BatchCheckDeviceNames: 10,
  QueryBatchRegisterDeviceStatus: 30, BatchRegisterDeviceWithApplyId: 500, QueryPageByApplyId: 50 });
module.exports.DOCUMENTED_QPS = DOCUMENTED_QPS;

if (require.main === module) {
  const fs = require('fs');
  const args = process.argv.slice(2);
  const arg = (name, def) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : def; };
  // Credentials come from the environment, as the plugin's do; never from the command line.
  const id = process.env.EMULATOR_ACCESS_KEY_ID || process.env.ALIBABA_CLOUD_ACCESS_KEY_ID;
  const secret = process.env.EMULATOR_ACCESS_KEY_SECRET || process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET;
  if (!id || !secret) {
    console.error('emulator: set EMULATOR_ACCESS_KEY_ID and EMULATOR_ACCESS_KEY_SECRET');
    process.exit(2);
  }
  const tls = arg('tls-cert') ? { cert: fs.readFileSync(arg('tls-cert')), key: fs.readFileSync(arg('tls-key')) } : null;
  // Credential services: --role-name, --role-arn, --oidc-provider-arn, --credential-ttl-s,
  // --credentials-uri-path; the OIDC token (a secret) from --oidc-token-file (read as is) or
  // EMULATOR_OIDC_TOKEN, else a generated one (GET /_emulator/credentials shows it).
  const credentials = {
    roleName: arg('role-name'), roleArn: arg('role-arn'), oidcProviderArn: arg('oidc-provider-arn'),
    uriPath: arg('credentials-uri-path'), ttlS: arg('credential-ttl-s') ? Number(arg('credential-ttl-s')) : undefined,
    oidcToken: arg('oidc-token-file') ? fs.readFileSync(arg('oidc-token-file'), 'utf8') : process.env.EMULATOR_OIDC_TOKEN,
  };
  const emu = createEmulator({
    accessKeys: { [id]: { secret } },
    products: (arg('products', 'a1TestProduct')).split(','),
    iotInstanceId: arg('iot-instance-id', null),
    // --quota RegisterDevice=30,QueryDeviceDetail=50
    quota: arg('quota') ? Object.fromEntries(arg('quota').split(',').map((kv) => { const [k, v] = kv.split('='); return [k, Number(v)]; })) : null,
    tls,
    credentials,
  });
  emu.setLatency(Number(arg('latency-ms', '0')));
  // batch stages: --check-duration-ms N, --create-duration-ms N, --stage-stuck check|create|both;
  // or in seconds, as the platform's are told: --stage-check-s S, --stage-create-s S (these win);
  // --stage-jitter F: each stage lasts its duration × (1 ± F), drawn per apply (default 0)
  const num = (name) => (arg(name) !== undefined ? Number(arg(name)) : undefined);
  const seconds = (name) => (num(name) !== undefined ? num(name) * 1000 : undefined);
  const stageArg = (s, ms) => (s !== undefined ? s : ms);
  for (const [name, v] of [['check-duration-ms', num('check-duration-ms')], ['create-duration-ms', num('create-duration-ms')],
    ['stage-check-s', num('stage-check-s')], ['stage-create-s', num('stage-create-s')], ['stage-jitter', num('stage-jitter')]]) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0 && (name !== 'stage-jitter' || v <= 0.9))) {
      console.error(`emulator: --${name} ${arg(name)}: a number${name === 'stage-jitter' ? ' from 0 to 0.9' : ', 0 or more'}`);
      process.exit(2);
    }
  }
  emu.setBatch({ checkDurationMs: stageArg(seconds('stage-check-s'), num('check-duration-ms')),
    createDurationMs: stageArg(seconds('stage-create-s'), num('create-duration-ms')),
    stageJitter: num('stage-jitter'),
    stageStuck: arg('stage-stuck') });
  emu.listen(Number(arg('port', '0')), arg('host', '127.0.0.1')).then((port) => {
    console.log(JSON.stringify({ emulator: 'listening', port, tls: !!tls }));
  });
  const stop = () => emu.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
