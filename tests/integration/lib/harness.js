'use strict';
// Integration harness: a real mosquitto with the built plugin, the platform emulator, and the
// real mosquitto_pub / mosquitto_sub / mosquitto_rr. Secrets are generated per run and never
// printed: assertion messages name what differs, not the values.

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { createEmulator } = require('../../emulator/emulator.js');

const PLUGIN = process.env.BOOTSTRAP_PLUGIN;
const PRODUCT_KEY = 'a1TestProduct';

function requirePlugin() {
  if (!PLUGIN || !fs.existsSync(PLUGIN)) throw new Error('BOOTSTRAP_PLUGIN must name the built mosquitto_bootstrap.so');
  return PLUGIN;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function withTimeout(promise, ms, onTimeout) {
  let timer;
  const t = new Promise((resolve, reject) => { timer = setTimeout(() => reject(onTimeout()), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Client processes still running; killed when the test process exits so none outlives it.
const live = new Set();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

function secret(prefix) { return prefix + '-' + crypto.randomBytes(12).toString('hex'); }

// The broker drops root for the 'mosquitto' user before it loads plugins: everything it reads
// lives in a directory that user owns.
function brokerUser() {
  if (process.getuid() !== 0) return null;
  try {
    return { uid: Number(execFileSync('id', ['-u', 'mosquitto']).toString()), gid: Number(execFileSync('id', ['-g', 'mosquitto']).toString()) };
  } catch (e) { return null; }
}

function makeWorkdir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-it-'));
  fs.chmodSync(dir, 0o755);
  return dir;
}

function giveToBroker(file) {
  const u = brokerUser();
  if (u) fs.chownSync(file, u.uid, u.gid);
}

class Broker {
  constructor(dir, port, confPath) {
    this.dir = dir;
    this.port = port;
    this.confPath = confPath;
    this.output = '';
    this.proc = null;
    this.exited = null;
  }

  log() { return this.output; }

  async start(env, { expectFailure = false, timeoutMs = 10000 } = {}) {
    const childEnv = { ...process.env, ...env };
    if (process.env.BOOTSTRAP_PRELOAD) childEnv.LD_PRELOAD = process.env.BOOTSTRAP_PRELOAD;
    // BOOTSTRAP_BROKER_WRAPPER runs the broker under a tool, e.g. valgrind (scripts/valgrind-tests)
    const wrapper = (process.env.BOOTSTRAP_BROKER_WRAPPER || '').split(' ').filter(Boolean);
    const argv = [...wrapper, 'mosquitto', '-c', this.confPath];
    if (wrapper.length) timeoutMs *= 6;
    this.proc = spawn(argv[0], argv.slice(1), { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.output += d; });
    this.proc.stderr.on('data', (d) => { this.output += d; });
    this.exited = new Promise((resolve) => this.proc.on('close', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + timeoutMs;
    let done = null;
    this.exited.then((x) => { done = x; });
    while (Date.now() < deadline) {
      if (done) {
        if (expectFailure) return done;
        throw new Error('broker exited during start-up (' + JSON.stringify(done) + '):\n' + this.output);
      }
      if (!expectFailure && await canConnect(this.port)) {
        this.assertSanitizerLoaded();
        return null;
      }
      await sleep(50);
    }
    if (expectFailure) throw new Error('broker was expected to refuse to start but kept running');
    throw new Error('broker did not start listening:\n' + this.output);
  }

  // A sanitized plugin in a broker without the runtime would prove nothing: check that every
  // library BOOTSTRAP_PRELOAD names (libasan for the ASan suite, libtsan for tests/tsan/) is there.
  assertSanitizerLoaded() {
    if (!process.env.BOOTSTRAP_PRELOAD) return;
    const maps = fs.readFileSync(`/proc/${this.proc.pid}/maps`, 'utf8');
    for (const runtime of preloadedRuntimes()) {
      assert.ok(maps.includes('/' + runtime + '.so'), `the broker runs without the ${runtime} runtime (BOOTSTRAP_PRELOAD)`);
    }
  }

  // Stops the broker and fails if a sanitizer reported anything in it.
  async stop() {
    if (!this.proc) return;
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    const result = await withTimeout(this.exited, 15000, () => {
      this.proc.kill('SIGKILL');
      return new Error('broker did not stop within 15 s of SIGTERM');
    });
    this.proc = null;
    assertNoSanitizerReport(this.output);
    assert.notStrictEqual(result.code, VALGRIND_ERROR_EXIT, 'valgrind reported errors or leaks in the broker:\n' + valgrindReport(this.output));
    return result;
  }
}

// scripts/valgrind-tests makes valgrind exit with this code when it found errors or leaks.
const VALGRIND_ERROR_EXIT = 97;

function valgrindReport(output) {
  return output.split('\n').filter((l) => /^==\d+==/.test(l)).slice(-80).join('\n');
}

// The libraries BOOTSTRAP_PRELOAD names, as they appear in /proc/PID/maps whatever the version
// suffix: /usr/lib/gcc/x86_64-linux-gnu/12/libtsan.so → libtsan.
function preloadedRuntimes() {
  return (process.env.BOOTSTRAP_PRELOAD || '').split(/[:\s]+/).filter(Boolean)
    .map((p) => path.basename(p).replace(/\.so(\..*)?$/, ''));
}

// ThreadSanitizer reports races, thread leaks and lock misuse as "WARNING: ThreadSanitizer: ...",
// not ERROR, and ends with "SUMMARY: ThreadSanitizer: ...".
// Also the sanitizers' own failures, which print no ERROR line but still end the broker with
// exit code 1: a leak check that could not stop the threads, a failed internal CHECK.
function assertNoSanitizerReport(output) {
  const bad = /ERROR: (Address|Leak|Thread)Sanitizer|(WARNING|FATAL): ThreadSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak|Thread)|LeakSanitizer has encountered a fatal error|Sanitizer: CHECK failed|Tracer caught signal/.exec(output);
  assert.ok(!bad, 'sanitizer report from the broker:\n' + output.slice(Math.max(0, bad ? bad.index - 200 : 0), bad ? bad.index + 4000 : 0));
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// The emulator in a process of its own, driven over its control API: for tests whose timing
// must not suffer from this process's event loop (spawning hundreds of clients stalls it).
// The same methods as the in-process emulator, but async.
// tls: { cert, key, ca } file paths: the emulator serves HTTPS with cert/key, and the control
// API is called over HTTPS too, trusting ca (the certificate is not checked without one).
async function startRemoteEmulator({ accessKeyId, accessKeySecret, quota, credentials = {}, batch = {}, products = [PRODUCT_KEY], tls = null }) {
  const args = [path.join(__dirname, '../../emulator/emulator.js'), '--port', '0', '--products', products.join(',')];
  if (tls) args.push('--tls-cert', tls.cert, '--tls-key', tls.key);
  if (quota) args.push('--quota', Object.entries(quota).map(([k, v]) => `${k}=${v}`).join(','));
  // the emulator's credential services (options.credentials); the OIDC token goes by environment
  const credFlags = { roleName: '--role-name', roleArn: '--role-arn', oidcProviderArn: '--oidc-provider-arn', ttlS: '--credential-ttl-s', uriPath: '--credentials-uri-path' };
  for (const [k, flag] of Object.entries(credFlags)) if (credentials[k] !== undefined) args.push(flag, String(credentials[k]));
  // batch stages (options checkDurationMs, createDurationMs, stageJitter, stageStuck: true | 'check' | 'create')
  const batchFlags = { checkDurationMs: '--check-duration-ms', createDurationMs: '--create-duration-ms', stageJitter: '--stage-jitter', stageStuck: '--stage-stuck' };
  for (const [k, flag] of Object.entries(batchFlags)) if (batch[k] !== undefined && batch[k] !== false) args.push(flag, batch[k] === true ? 'both' : String(batch[k]));
  const credEnv = credentials.oidcToken ? { EMULATOR_OIDC_TOKEN: credentials.oidcToken } : {};
  const proc = spawn(process.execPath, args, { env: { ...process.env, EMULATOR_ACCESS_KEY_ID: accessKeyId, EMULATOR_ACCESS_KEY_SECRET: accessKeySecret, ...credEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
  live.add(proc);
  const port = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => { out += d; const m = /"port":(\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    proc.on('exit', () => reject(new Error('the emulator exited')));
  });
  const controlTls = tls ? (tls.ca ? { ca: fs.readFileSync(tls.ca) } : { rejectUnauthorized: false }) : null;
  const call = (method, p, body) => new Promise((resolve, reject) => {
    const req = (tls ? https : http).request({ host: '127.0.0.1', port, method, path: p, ...controlTls }, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => resolve(res.statusCode === 200 ? JSON.parse(d) : null));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
  return {
    port,
    pid: proc.pid,
    stats: () => call('GET', '/_emulator/stats'),
    resetStats: () => call('POST', '/_emulator/reset'),
    setQuota: (q) => call('POST', '/_emulator/quota', q),
    addFaults: (...faults) => call('POST', '/_emulator/faults', { faults }),
    setLatency: (ms) => call('POST', '/_emulator/faults', { latencyMs: ms }),
    preRegister: (productKey, names) => call('POST', '/_emulator/preregister', { productKey, names }),
    device: (productKey, name) => call('GET', `/_emulator/device?productKey=${encodeURIComponent(productKey)}&name=${encodeURIComponent(name)}`),
    allDeviceSecrets: () => call('GET', '/_emulator/secrets'),
    // credential services (see emulator.js, "Credential services")
    credentialsConfig: () => call('GET', '/_emulator/credentials'),
    setCredentialsRefusal: (refuse, status, services) => call('POST', '/_emulator/credentials', { refuse, status, services }),
    setCredentialTtl: (ttlS) => call('POST', '/_emulator/credentials', { ttlS }),
    setStsCallers: (stsCallers) => call('POST', '/_emulator/credentials', { stsCallers }),
    setOidcToken: (oidcToken) => call('POST', '/_emulator/credentials', { oidcToken }),
    expireIssuedCredentials: () => call('POST', '/_emulator/credentials', { expireAll: true }),
    issuedCredentials: () => call('GET', '/_emulator/issued-credentials'),
    credentialStats: () => call('GET', '/_emulator/stats').then((s) => s && s.credentials),
    allIssuedSecrets: () => call('GET', '/_emulator/issued-secrets'),
    // batch actions (see emulator.js, "Batch actions"): stage durations, the stuck-stage switch, one apply
    setBatch: (cfg) => call('POST', '/_emulator/batch', cfg),
    batchConfig: () => call('GET', '/_emulator/batch'),
    batchApply: (applyId) => call('GET', `/_emulator/batch?applyId=${encodeURIComponent(applyId)}`),
    close: () => new Promise((resolve) => { proc.on('close', resolve); proc.kill('SIGTERM'); }),
  };
}

// An environment: emulator + broker with the plugin, torn down by stop().
// requestAuth: 'sign' (the plugin's default: a ProductSecret file is made and env.request()
// signs), 'identity' or 'none'. Options given as null are left out of the configuration.
// logTypes: the broker's log_type lines (tests log everything, to grep it for secrets).
// plugin: a .so other than the build's (e.g. one unpacked from the .deb).
// shareWith: another environment whose emulator, credentials and ProductSecret this broker
// uses too (several brokers on one account, as behind a load balancer).
// products: ProductKeys served through plugin_opt_products_file instead of product_key and
// product_secret_file: each gets a secret file of its own (env.productSecrets), the emulator
// knows them all (and emulator.products, for products a test adds later), and requests name
// their product (productKey) unless told not to; pluginOptions.product_key sets a default.
// productsLines: raw lines appended to that products file.
async function startEnv({ globalConfig = '', brokerEnv = {}, shareWith = null, plugin: pluginPath = null, pluginOptions = {}, emulator = {}, emulatorProcess = false, noPlugin = false, logTypes = ['all'], credentials = 'env', credentialsOverride = {}, requestAuth = 'sign', extraConfig = '', expectFailure = false, products = null, productsLines = '' } = {}) {
  const plugin = pluginPath || requirePlugin();
  const dir = makeWorkdir();
  const accessKeyId = shareWith ? shareWith.accessKeyId : 'LTAI' + crypto.randomBytes(8).toString('hex');
  const accessKeySecret = shareWith ? shareWith.accessKeySecret : secret('aksecret');
  // emulator.tls: { cert, key } file paths (and ca, for the control API of emulatorProcess): the
  // emulator serves HTTPS and the endpoint is https
  const emuTls = emulator.tls ? { cert: fs.readFileSync(emulator.tls.cert), key: fs.readFileSync(emulator.tls.key) } : null;
  const emuProducts = [...new Set([PRODUCT_KEY, ...(products || []), ...(emulator.products || [])])];
  const emuOptions = { accessKeys: { [accessKeyId]: { secret: accessKeySecret } }, ...emulator, products: emuProducts, tls: emuTls };
  let emu;
  if (shareWith) emu = shareWith.emu;
  else emu = emulatorProcess ? await startRemoteEmulator({ accessKeyId, accessKeySecret, quota: emulator.quota, credentials: emulator.credentials,
    batch: { checkDurationMs: emulator.checkDurationMs, createDurationMs: emulator.createDurationMs, stageJitter: emulator.stageJitter, stageStuck: emulator.stageStuck },
    products: emuProducts, tls: emulator.tls || null }) : createEmulator(emuOptions);
  const emuPort = shareWith ? shareWith.emuPort : emulatorProcess ? emu.port : await emu.listen(0);
  const retiredSecrets = [];
  const port = await freePort();

  const soPath = path.join(dir, 'mosquitto_bootstrap.so');
  fs.copyFileSync(plugin, soPath);
  fs.chmodSync(soPath, 0o755);

  const opts = { product_key: PRODUCT_KEY, endpoint: `${emuTls ? 'https' : 'http'}://127.0.0.1:${emuPort}/` };
  const productSecret = shareWith ? shareWith.productSecret : secret('prodsecret');
  const productSecrets = {};
  const productsFile = path.join(dir, 'products');
  // the products file and a secret file per product, as an operator writes them: 0600
  const writeProducts = (map, extra = '') => {
    const lines = ['# ProductKey  secret file'];
    for (const [pk, s] of Object.entries(map)) {
      const f = path.join(dir, `product-secret-${pk}-${crypto.randomBytes(3).toString('hex')}`);
      fs.writeFileSync(f, s + '\n', { mode: 0o600 });
      giveToBroker(f);
      lines.push(`${pk} ${f}`);
    }
    fs.writeFileSync(productsFile + '.new', lines.join('\n') + '\n' + extra, { mode: 0o600 });
    giveToBroker(productsFile + '.new');
    fs.renameSync(productsFile + '.new', productsFile); // a reload never reads half a file
  };
  if (products) {
    for (const pk of products) productSecrets[pk] = secret('prodsecret-' + pk);
    writeProducts(productSecrets, productsLines);
    opts.products_file = productsFile;
    opts.product_key = null; // none by default: requests name their product
  } else if (requestAuth === 'sign') {
    const f = path.join(dir, 'product-secret');
    fs.writeFileSync(f, productSecret + '\n', { mode: 0o600 });
    giveToBroker(f);
    opts.product_secret_file = f; // request_auth itself is left at its default, sign
  } else {
    opts.request_auth = requestAuth;
  }
  Object.assign(opts, pluginOptions);
  // The default chain tries the ECS metadata service (100.100.100.200) when the sources before it
  // fail: a test never sends anything off this machine, so unless it names its own (the
  // emulator's), the plugin is pointed at a loopback port where nothing listens.
  if (!('ecs_metadata_endpoint' in opts)) opts.ecs_metadata_endpoint = 'http://127.0.0.1:9';
  const env = {};
  if (credentials === 'env') {
    env.ALIBABA_CLOUD_ACCESS_KEY_ID = accessKeyId;
    env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = accessKeySecret;
  } else if (credentials === 'file' || typeof credentials === 'object') {
    // an object: the [default] profile's lines, with the account's key where they say $KEY
    const profile = typeof credentials === 'object'
      ? Object.entries(credentials).map(([k, v]) => `${k} = ${v}`).join('\n').replace(/\$KEY_ID/g, accessKeyId).replace(/\$KEY_SECRET/g, accessKeySecret) + '\n'
      : `type = access_key\naccess_key_id = ${accessKeyId}\naccess_key_secret = ${accessKeySecret}\n`;
    const f = path.join(dir, 'credentials');
    fs.writeFileSync(f, `[default]\n${profile}`, { mode: 0o600 });
    giveToBroker(f);
    opts.credentials_file = f;
  }
  const lines = [
    globalConfig, // options Mosquitto wants before any listener
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'log_dest stderr',
    ...logTypes.map((t) => `log_type ${t}`),
    'connection_messages true',
    extraConfig.replace(/\$DIR/g, dir),
    // in option values '$PORT' stands for this broker's listener port, '$DIR' for its directory,
    // '$EMUPORT' for the emulator's port
    ...(noPlugin ? [] : [`plugin ${soPath}`,
      ...Object.entries(opts).filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => `plugin_opt_${k} ${v === '$PORT' ? port : String(v).replace('$DIR', dir).replace('$EMUPORT', emuPort)}`)]),
  ];
  const confPath = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(confPath, lines.join('\n') + '\n');
  giveToBroker(dir);

  // brokerEnv values may name '$EMUPORT' and '$DIR' too
  const brokerVars = Object.fromEntries(Object.entries(brokerEnv).map(([k, v]) => [k, String(v).replace('$EMUPORT', emuPort).replace('$DIR', dir)]));
  Object.assign(env, credentialsOverride, brokerVars);
  const broker = new Broker(dir, port, confPath);
  let failure;
  try {
    failure = await broker.start(env, { expectFailure });
  } catch (e) {
    // a broker that would not start leaves no emulator process or directory behind
    if (!shareWith) await emu.close();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  // the plugin's start-up check is one platform call at start: tests that count calls, slots or
  // latency begin once it has been answered (or after a while: a test may make it fail)
  if (!failure && !noPlugin) {
    const until = Date.now() + (process.env.BOOTSTRAP_BROKER_WRAPPER ? 20000 : 5000);
    while (!/mosquitto_bootstrap: platform check: /.test(broker.log()) && Date.now() < until) await sleep(25);
  }
  const secrets = [accessKeySecret, productSecret, ...Object.values(productSecrets), ...Object.values(credentialsOverride)];
  const productKey = opts.product_key || (products ? products[0] : PRODUCT_KEY);
  const secretOf = (pk) => (products ? productSecrets[pk] : productSecret);

  return {
    dir, port, emu, emuPort, broker, accessKeyId, productKey, products, productSecrets, productsFile: products ? productsFile : null,
    productSecretFile: requestAuth === 'sign' ? path.join(dir, 'product-secret') : null, accessKeySecret, productSecret, failure, secrets,
    // The platform goes away (connections cut) and comes back after downMs, on the same port,
    // without the devices it knew: a restart of the emulator, not of the broker.
    async restartEmulator(downMs) {
      retiredSecrets.push(...this.emu.allDeviceSecrets(), ...this.emu.allIssuedSecrets());
      await this.emu.close();
      await sleep(downMs);
      emu = createEmulator(emuOptions);
      await emu.listen(emuPort);
      this.emu = emu;
    },
    // A device that does what the reply says: on retryAfter it waits that long and asks again
    // (with a new random). Resolves with { reply, tries, codes }.
    async device(deviceId, { maxTries = 20, timeoutS = 60, productKey: pk = productKey } = {}) {
      const codes = [];
      for (let tries = 1; ; tries++) {
        const r = await this.rr(deviceId, { timeoutS, productKey: pk });
        const reply = r.reply;
        codes.push(reply ? (reply.success ? 'ok' : reply.code) : 'no_reply');
        if (!reply || reply.success || !reply.retryAfter || tries >= maxTries) return { reply, tries, codes };
        await sleep(reply.retryAfter * 1000);
      }
    },
    // Many requests through one connection: mosquitto_pub -l sends a line per message.
    async publishMany(lines) {
      return new Promise((resolve) => {
        const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'bootstrap/register', '-q', '1', '-l', '-i', 'bulk-' + crypto.randomBytes(3).toString('hex')], { stdio: ['pipe', 'ignore', 'pipe'] });
        let stderr = '';
        p.stderr.on('data', (d) => { stderr += d; });
        p.on('close', (code) => resolve({ code, stderr }));
        p.stdin.end(lines.join('\n') + '\n');
      });
    },
    // A request payload for deviceId: signed with a fresh random when the broker wants a sign,
    // for productKey (the environment's by default) with key (that product's secret by default).
    // It names its product (productKey member) when sendProductKey says so, by default when the
    // broker serves several products.
    request(deviceId, { random, method = 'hmacsha256', productKey: pk = productKey, key = secretOf(pk), sendProductKey = !!products } = {}) {
      if (requestAuth !== 'sign') return JSON.stringify(sendProductKey ? { deviceId, productKey: pk } : { deviceId });
      const signed = signRequest(deviceId, pk, key, { random, method });
      return JSON.stringify(sendProductKey ? { productKey: pk, ...signed } : signed);
    },
    // mosquitto_rr for deviceId, as the device itself (client id = deviceId). A sealed success
    // reply is opened with the request's key (its product's secret): reply.data then holds the
    // triple, as in the clear, and reply.sealed stays. With reply_encryption on (sign's
    // default) a success reply in the clear fails the test.
    async rr(deviceId, { method, productKey: pk = productKey, key, sendProductKey, ...options } = {}) {
      const random = crypto.randomBytes(12).toString('hex');
      const r = await rr(port, { id: deviceId, message: this.request(deviceId, { random, method, productKey: pk, key, sendProductKey }), ...options });
      if (r.reply && r.reply.success && this.sealing) {
        assert.ok(r.reply.sealed && !r.reply.data, 'a success reply in the clear while reply_encryption is on');
        r.reply.data = openSealed(r.reply, { productSecret: secretOf(pk), random, productKey: pk, deviceId });
      }
      return r;
    },
    // Rewrites the products file (and new secret files) as { ProductKey: secret }, extra lines
    // appended; the broker takes it up on SIGHUP. New secrets are checked for in the log too.
    writeProducts(map, extra = '') {
      for (const k of Object.keys(productSecrets)) delete productSecrets[k];
      Object.assign(productSecrets, map);
      for (const s of Object.values(map)) if (!secrets.includes(s)) secrets.push(s);
      writeProducts(map, extra);
    },
    sealing: requestAuth === 'sign' && pluginOptions.reply_encryption !== 'off',
    async stop() {
      try {
        await broker.stop();
      } finally {
        if (!shareWith) await emu.close(); // a shared emulator is its owner's to close
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    // Stops the broker and starts it again on the same configuration: whatever it kept in
    // memory (the replay cache, the queue) is gone.
    async restartBroker() {
      await broker.stop();
      const checks = (broker.log().match(/mosquitto_bootstrap: platform check: /g) || []).length;
      await broker.start(env);
      const until = Date.now() + 5000;
      while ((broker.log().match(/mosquitto_bootstrap: platform check: /g) || []).length <= checks && Date.now() < until) await sleep(25);
    },
    // Every DeviceSecret the emulator handed out plus the AccessKey secret, and every issued
    // credential secret / SecurityToken / metadata token and the OIDC token: none may be logged.
    // (With emulatorProcess, await it: the secrets come over the control API.)
    assertLogClean() {
      if (emulatorProcess) {
        return Promise.all([emu.allDeviceSecrets(), emu.allIssuedSecrets()]).then(([d, i]) => this.assertNoneLogged(d.concat(i)));
      }
      return this.assertNoneLogged(emu.allDeviceSecrets().concat(emu.allIssuedSecrets()));
    },
    // The broker log's last lines with every secret this environment knows replaced by
    // <secret>: for a failure message, which the test prints.
    async logTail(lines = 40) {
      const issued = emulatorProcess ? (await emu.allDeviceSecrets()).concat(await emu.allIssuedSecrets())
        : emu.allDeviceSecrets().concat(emu.allIssuedSecrets());
      let log = broker.log();
      for (const s of secrets.concat(issued, retiredSecrets).filter(Boolean)) log = log.split(s).join('<secret>');
      return log.split('\n').slice(-lines).join('\n');
    },
    assertNoneLogged(deviceSecrets) {
      const log = broker.log();
      const all = secrets.concat(deviceSecrets, retiredSecrets);
      keepForAudit(log, all);
      const leaked = all.filter((s) => log.includes(s)).length;
      assert.strictEqual(leaked, 0, `${leaked} secret(s) appear in the broker log`);
    },
  };
}

// A throw-away PKI made with the openssl CLI: a CA, and leaf certificates signed by it.
// leaf(name, { cn, dns: [...], ip: [...], client }) → { cert, key } file paths (given to the broker user).
function makePki(dir) {
  const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=bootstrap test CA', '-keyout', ca.key, '-out', ca.cert]);
  const leaf = (name, { cn, dns = [], ip = [], client = false }) => {
    const key = path.join(dir, name + '.key');
    const csr = path.join(dir, name + '.csr');
    const cert = path.join(dir, name + '.crt');
    const ext = path.join(dir, name + '.ext');
    const san = [...dns.map((d) => 'DNS:' + d), ...ip.map((i) => 'IP:' + i)].join(',');
    fs.writeFileSync(ext, (san ? `subjectAltName=${san}\n` : '') + `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}\n`);
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=' + cn, '-keyout', key, '-out', csr]);
    ossl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', cert]);
    for (const f of [key, cert]) giveToBroker(f);
    return { cert, key };
  };
  for (const f of [ca.cert]) giveToBroker(f);
  return { ca: ca.cert, leaf };
}

// The reply key of contract v1 (README "Sealed replies").
function sealKey({ productSecret, random, productKey, deviceId }) {
  const info = Buffer.concat([Buffer.from('mosquitto-bootstrap/v1/reply'), Buffer.from([0]), Buffer.from(productKey), Buffer.from([0]), Buffer.from(deviceId)]);
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(productSecret), Buffer.from(random), info, 16));
}

// Opens reply.sealed (throws if it does not open: a forgery or another request's answer) and
// checks the triple names the device and product it was asked for. Returns the triple.
function openSealed(reply, { productSecret, random, productKey, deviceId }) {
  const s = reply.sealed;
  assert.ok(s && s.alg === 'A128GCM', 'a sealed reply of contract v1');
  const d = crypto.createDecipheriv('aes-128-gcm', sealKey({ productSecret, random, productKey, deviceId }), Buffer.from(s.iv, 'base64'));
  d.setAuthTag(Buffer.from(s.tag, 'base64'));
  const triple = JSON.parse(Buffer.concat([d.update(Buffer.from(s.ct, 'base64')), d.final()]).toString());
  assert.deepStrictEqual(Object.keys(triple), ['ProductKey', 'DeviceName', 'DeviceSecret', 'IotId']);
  assert.strictEqual(triple.DeviceName, deviceId, 'the sealed triple is for the device that asked');
  assert.strictEqual(triple.ProductKey, productKey, 'the sealed triple is for the product asked');
  return triple;
}

// Alibaba's dynamic-registration sign over deviceName, productKey and random.
function signRequest(deviceId, productKey, productSecret, { random, method = 'hmacsha256' } = {}) {
  const r = random || crypto.randomBytes(12).toString('hex');
  const algo = { hmacsha1: 'sha1', hmacmd5: 'md5' }[method.toLowerCase()] || 'sha256';
  const sign = crypto.createHmac(algo, productSecret).update(`deviceName${deviceId}productKey${productKey}random${r}`).digest('hex');
  return { deviceId, random: r, signMethod: method, sign };
}

// BOOTSTRAP_KEEP_LOGS=DIR: keep every broker log in DIR/logs/ and the secrets it was checked
// against in DIR/secrets/ (0600), for an independent grep of one against the other.
function keepForAudit(log, secretList) {
  const dir = process.env.BOOTSTRAP_KEEP_LOGS;
  if (!dir) return;
  const name = `${path.basename(process.argv[1], '.test.js')}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'secrets'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'logs', name + '.log'), log);
  fs.writeFileSync(path.join(dir, 'secrets', name + '.txt'), secretList.filter(Boolean).join('\n') + '\n', { mode: 0o600 });
}

// An acl_file granting every topic ($SYS too) to every client: for acl defer beside another
// ACL mechanism. Written into dir, which the caller removes.
function aclFileAllowingAll(dir) {
  const f = path.join(dir, 'acl');
  fs.writeFileSync(f, 'topic readwrite #\ntopic read $SYS/#\npattern readwrite #\n');
  fs.chmodSync(f, 0o644);
  giveToBroker(f);
  return f;
}

// A mosquitto password_file with users { name: password }, written into dir.
async function passwordFile(dir, users) {
  const f = path.join(dir, 'passwords');
  fs.writeFileSync(f, '');
  for (const [user, password] of Object.entries(users)) await run('mosquitto_passwd', ['-b', f, user, password]);
  fs.chmodSync(f, 0o644);
  giveToBroker(f);
  return f;
}

// Runs fn(env) against a fresh environment, checks the broker log for secrets, tears down.
async function withEnv(options, fn) {
  const env = await startEnv(options);
  let ran = false;
  try {
    await fn(env);
    ran = true;
    await env.assertLogClean();
  } catch (e) {
    // a failed test's log is checked and kept (BOOTSTRAP_KEEP_LOGS) too: the one worth reading
    if (!ran) await Promise.resolve().then(() => env.assertLogClean()).catch((leak) => { e.message += '\n' + leak.message; });
    throw e;
  } finally {
    await env.stop();
  }
}

// Runs a client tool; resolves with { code, stdout, stderr, ms }.
function run(cmd, args, { timeoutMs = 15000 } = {}) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    // 'close', not 'exit': exit can come before the last of stdout has been read
    p.on('close', (code, signal) => {
      live.delete(p);
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
  });
}

// mosquitto_rr: one connection, publish the request with a response topic, wait for one reply.
async function rr(port, { id, message, responseTopic, topic = 'bootstrap/register', timeoutS = 10, extra = [] }) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', topic, '-e', responseTopic || `bootstrap/reply/${id}`, '-W', String(timeoutS), ...extra];
  if (message === null) args.push('-n'); else args.push('-m', message);
  if (id) args.push('-i', id);
  const r = await run('mosquitto_rr', args, { timeoutMs: (timeoutS + 5) * 1000 });
  return { ...r, reply: parseReply(r.stdout) };
}

function parseReply(stdout) {
  const line = stdout.trim().split('\n').filter(Boolean).pop();
  if (!line) return null;
  try { return JSON.parse(line); } catch (e) { return { unparsable: true }; }
}

// A request whose payload is any bytes (mosquitto_rr -f sends nothing in 2.0.11, and error
// replies are QoS 0, never kept for a later session): one raw MQTT connection under id that
// subscribes to its reply topic, publishes the bytes and waits for the answer.
async function requestRaw(port, { id, payload, timeoutS = 5, version = 4, properties }) {
  const mqtt = require('./mqtt_raw');
  const c = await mqtt.connect(port, { clientId: id, version });
  try {
    await c.subscribe(`bootstrap/reply/${id}/#`, 1);
    await c.subscribe(`bootstrap/reply/${id}`, 1);
    await c.publish('bootstrap/register', payload, { qos: 1, properties });
    const m = await c.waitFor(() => true, timeoutS * 1000).catch(() => null);
    return { topic: m ? m.topic : null, reply: m ? parseReply(m.payload.toString()) : null };
  } finally {
    await c.disconnect();
  }
}

async function requestFromFile(port, { id, file, timeoutS = 5 }) {
  return requestRaw(port, { id, payload: fs.readFileSync(file), timeoutS });
}

async function pub(port, { id, topic = 'bootstrap/register', message, qos = 1, extra = [] }) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', topic, '-q', String(qos), ...extra];
  if (message === '') args.push('-n'); else args.push('-m', message);
  if (id) args.push('-i', id);
  return run('mosquitto_pub', args);
}

// mosquitto_sub in the background. ready resolves once its SUBACK arrived; messages() stops it
// and returns what it received as { topic, payload }.
function sub(port, { id, topics, qos = 1, extra = [] }) {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-q', String(qos), '-d', '-F', 'MSG|%t|%p', ...extra];
  for (const t of topics) args.push('-t', t);
  if (id) args.push('-i', id);
  // line-buffered, or the SUBACK line waits in stdio's buffer while stdout is a pipe
  const p = spawn('stdbuf', ['-oL', 'mosquitto_sub', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(p);
  p.on('exit', () => live.delete(p));
  let out = '';
  let readyResolve;
  const ready = new Promise((r) => { readyResolve = r; });
  p.stdout.on('data', (d) => { out += d; if (out.includes('SUBACK')) readyResolve(); });
  p.stderr.on('data', () => {});
  const exited = new Promise((r) => p.on('close', r));
  const parse = () => out.split('\n').filter((l) => l.startsWith('MSG|')).map((l) => {
    const rest = l.slice(4);
    const bar = rest.indexOf('|');
    return { topic: rest.slice(0, bar), payload: rest.slice(bar + 1) };
  });
  return {
    ready: withTimeout(ready, 5000, () => { p.kill('SIGKILL'); return new Error('mosquitto_sub got no SUBACK'); }),
    received: parse,
    async waitFor(n, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      while (parse().length < n && Date.now() < deadline) await sleep(25);
      return parse();
    },
    async messages() { p.kill('SIGTERM'); await exited; return parse(); },
  };
}

// Time from TCP connect to CONNACK for a fresh MQTT 3.1.1 client, in ms.
function connackMs(port) {
  return new Promise((resolve, reject) => {
    const id = 'probe-' + crypto.randomBytes(4).toString('hex');
    const payload = Buffer.concat([Buffer.from([0, id.length]), Buffer.from(id)]);
    const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 30]);
    const body = Buffer.concat([variable, payload]);
    const packet = Buffer.concat([Buffer.from([0x10, body.length]), body]);
    const s = net.connect(port, '127.0.0.1');
    let t0;
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no CONNACK within 5 s')); }, 5000);
    s.on('connect', () => { t0 = process.hrtime.bigint(); s.write(packet); });
    s.on('data', (d) => {
      if (d[0] === 0x20) {
        clearTimeout(timer);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        s.write(Buffer.from([0xe0, 0]));
        s.end();
        resolve({ ms, returnCode: d[3] });
      }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// A redis-server of the test's own (Debian's), never the system one: loopback on a free port
// (port: a given one, e.g. to come back on after a kill) and a unix socket in a directory of its
// own, no persistence (so a restart forgets everything, the worst case). password: requirepass;
// with user too, an ACL user (the default user off). kill(signal) and start() again; cli(...)
// runs redis-cli against it; stop() removes everything.
async function startRedis({ port = null, user = null, password = null, aclRules = null } = {}) {
  const dir = makeWorkdir();
  port = port || await freePort();
  const socket = path.join(dir, 'redis.sock');
  const conf = path.join(dir, 'redis.conf');
  const lines = [`port ${port}`, 'bind 127.0.0.1', 'save ""', 'appendonly no', `dir ${dir}`, `unixsocket ${socket}`,
    'unixsocketperm 777', 'daemonize no', 'loglevel warning'];
  // aclRules: the user's rules after its password (examples/multi-broker/redis.conf's, say)
  // the test itself (cli) is the default user, the administrator, with a password of its own
  // (as in examples/multi-broker/redis.conf, which says why not "user default off")
  const admin = 'admin-' + crypto.randomBytes(8).toString('hex');
  if (user) lines.push(`user default on >${admin} ~* &* +@all`, `user ${user} on >${password} ${aclRules || '~* &* +@all'}`);
  else if (password) lines.push(`requirepass ${password}`);
  fs.writeFileSync(conf, lines.join('\n') + '\n', { mode: 0o600 });
  let proc = null, output = '';
  const auth = user ? ['--pass', admin, '--no-auth-warning'] : password ? ['--pass', password, '--no-auth-warning'] : [];
  const r = {
    port, socket, dir, url: `redis://127.0.0.1:${port}`, unixUrl: `unix://${socket}`, password, user,
    output: () => output,
    async start() {
      proc = spawn('redis-server', [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      live.add(proc);
      proc.stdout.on('data', (d) => { output += d; });
      proc.stderr.on('data', (d) => { output += d; });
      const exited = new Promise((resolve) => proc.on('close', resolve));
      r.exited = exited;
      for (let i = 0; i < 100; i++) {
        if (await canConnect(port)) return r;
        await sleep(50);
      }
      throw new Error('redis-server did not start:\n' + output);
    },
    // SIGKILL: gone at once, nothing saved; SIGSTOP/SIGCONT: a Redis that stops answering
    kill(signal = 'SIGKILL') {
      if (!proc) return Promise.resolve();
      const p = proc;
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') { p.kill(signal); return Promise.resolve(); }
      proc = null;
      live.delete(p);
      p.kill(signal);
      return r.exited;
    },
    cli(...args) {
      return run('redis-cli', ['-p', String(port), ...auth, ...args]).then((x) => x.stdout.trim());
    },
    async stop() {
      await r.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return r.start();
}

// HAProxy on loopback in front of brokers (their ports), from an example configuration whose
// frontend binds ":1883" and whose servers are named broker1, broker2, ...: every server line
// after the last broker given is dropped. Resolves with { port, stop() } once it accepts MQTT.
async function startHaproxy(cfgPath, brokerPorts) {
  const dir = makeWorkdir();
  const port = await freePort();
  let text = fs.readFileSync(cfgPath, 'utf8').replace(/^(\s*)bind :1883$/m, `$1bind 127.0.0.1:${port}`);
  text = text.replace(/^(\s*)server broker(\d+) .*$/mg, (line, indent, n) => (Number(n) <= brokerPorts.length
    ? `${indent}server broker${n} 127.0.0.1:${brokerPorts[Number(n) - 1]} check` : ''));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, text);
  const proc = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(proc);
  const exited = new Promise((resolve) => proc.on('close', resolve));
  for (let i = 0; i < 50; i++) { if (await connackMs(port).then(() => true, () => false)) break; await sleep(100); }
  return {
    port,
    async stop() { proc.kill('SIGTERM'); await exited; live.delete(proc); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

// bench/loadgen (the build's): n devices <prefix>-00000.. connect to port, then all ask at once,
// each coming back as retryAfter says; resolves with its JSON summary (ok, seconds, codes, ...).
function loadgen(port, env, n, { prefix, extra = [] } = {}) {
  const bin = process.env.BOOTSTRAP_LOADGEN || path.join(process.env.BOOTSTRAP_BUILD_DIR || path.dirname(PLUGIN || ''), 'loadgen');
  const argv = ['-p', String(port), '-n', String(n), '--product-key', env.productKey, '--prefix', prefix || 'lg' + crypto.randomBytes(2).toString('hex'), '--no-probe', ...extra];
  if (env.productSecretFile) argv.push('--product-secret-file', env.productSecretFile);
  return new Promise((resolve, reject) => {
    const p = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => {
      live.delete(p);
      try { resolve(JSON.parse(out.trim().split('\n').pop())); } catch (e) { reject(new Error(`loadgen exited ${code}: ${err || out}`)); }
    });
  });
}

// Compares secrets without printing them.
// A multi-broker service on loopback: one Redis, `brokers` brokers sharing one emulator (in its
// own process, with `emulator` options), an operator 'ops' who may read the metrics, HAProxy in
// front (examples/multi-broker/haproxy.cfg). pluginOptions are every broker's, beside redis_url.
// Resolves with { redis, brokers, haproxy, metrics(), stop() }.
async function startService({ brokers: count = 3, emulator = {}, pluginOptions = {} } = {}) {
  const redis = await startRedis();
  const dir = makeWorkdir();
  const pw = await passwordFile(dir, { ops: 'ops-password' });
  const common = { pluginOptions: { redis_url: redis.url, metrics_interval: 1, operator: 'ops', ...pluginOptions },
    extraConfig: `password_file ${pw}\nallow_anonymous true`, logTypes: ['error', 'warning', 'notice', 'information'] };
  const brokers = [await startEnv({ emulatorProcess: true, emulator, ...common })];
  while (brokers.length < count) brokers.push(await startEnv({ emulatorProcess: true, shareWith: brokers[0], ...common }));
  const haproxy = await startHaproxy(path.join(__dirname, '../../../examples/multi-broker/haproxy.cfg'), brokers.map((e) => e.port));
  return {
    redis, brokers, haproxy,
    metrics: () => Promise.all(brokers.map((e) => readMetrics(e.port, ['-u', 'ops', '-P', 'ops-password']))),
    async stop() {
      await haproxy.stop();
      for (const e of brokers.slice().reverse()) await e.stop();
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The retained $SYS/broker/bootstrap/ numbers, by topic below that prefix (auth: mosquitto_sub's -u/-P).
async function readMetrics(port, auth) {
  const s = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), ...auth, '-t', '$SYS/broker/bootstrap/#', '-v', '-W', '1']);
  const m = {};
  for (const line of s.stdout.split('\n').filter(Boolean)) {
    const sp = line.indexOf(' ');
    m[line.slice('$SYS/broker/bootstrap/'.length, sp)] = Number(line.slice(sp + 1));
  }
  return m;
}

function assertSameSecret(actual, expected, what) {
  assert.ok(typeof actual === 'string' && actual.length > 0, `${what}: missing`);
  assert.ok(actual === expected, `${what}: differs from the platform's`);
}

// mosquitto.conf.example (text) made runnable in dir: the plugin copied to
// dir/mosquitto_bootstrap.so (for the broker's user), each [regex, replacement] of edits applied,
// each regex asserted to match first (the example must still have that line), the result written
// to dir/mosquitto.conf; returns { confPath, conf }. Start it with startConfigured.
function editExample(dir, text, edits) {
  const so = path.join(dir, 'mosquitto_bootstrap.so');
  fs.copyFileSync(requirePlugin(), so);
  fs.chmodSync(so, 0o755);
  let conf = text;
  for (const [re, line] of edits) {
    assert.match(conf, re, `the example has a line ${re}`);
    conf = conf.replace(re, line);
  }
  const confPath = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(confPath, conf);
  giveToBroker(dir);
  return { confPath, conf };
}

// Starts a broker on confPath with brokerEnv and waits (5 s at most) for the plugin's start-up
// platform check to be logged.
async function startConfigured(dir, port, confPath, brokerEnv) {
  const broker = new Broker(dir, port, confPath);
  await broker.start(brokerEnv);
  for (let i = 0; i < 100 && !/mosquitto_bootstrap: platform check: /.test(broker.log()); i++) await sleep(50);
  return broker;
}

// Resolves once the broker's log matches re; fails after timeoutMs with the plugin's last lines.
async function waitForLog(env, re, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!re.test(env.broker.log())) {
    if (Date.now() > deadline) {
      const mine = env.broker.log().split('\n').filter((l) => l.includes('mosquitto_bootstrap:')).slice(-12).join('\n');
      throw new Error(`no log line matching ${re}; the plugin's last lines:\n${mine}`);
    }
    await sleep(50);
  }
}

// A device asks and gets its triple, the DeviceSecret the emulator holds for it.
async function assertServes(env, id) {
  const r = await env.rr(id, { timeoutS: 20 });
  assert.strictEqual(r.reply && r.reply.success, true, `${id}: ${JSON.stringify(r.reply && r.reply.code)}`);
  assertSameSecret(r.reply.data.DeviceSecret, env.emu.device(PRODUCT_KEY, id).DeviceSecret, `${id} DeviceSecret`);
}

module.exports = { editExample, startConfigured, waitForLog, assertServes, startService, startRedis, startHaproxy, loadgen, readMetrics, requestRaw, sealKey, openSealed, aclFileAllowingAll, passwordFile, withEnv, live, requestFromFile, makePki, signRequest, startEnv, rr, pub, sub, run, connackMs, sleep, freePort, assertSameSecret, assertNoSanitizerReport, PRODUCT_KEY, makeWorkdir, giveToBroker, Broker };

// ---- Structured signals (issue 20): tests assert behaviour on these, not on log wording ----

// The operator 'ops' who may read $SYS/broker/bootstrap/# under acl strict (readSys's default
// auth): spread operatorOptions(options) into startEnv; pluginOptions and extraConfig given are
// kept. Counters every second. The password file is made once per test process.
const OPS_AUTH = ['-u', 'ops', '-P', 'ops-password'];
let opsPasswordFile = null;
async function operatorOptions(options = {}) {
  if (!opsPasswordFile) {
    const dir = makeWorkdir();
    opsPasswordFile = await passwordFile(dir, { ops: 'ops-password' });
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return { ...options, pluginOptions: { metrics_interval: 1, operator: 'ops', ...(options.pluginOptions || {}) },
    extraConfig: `password_file ${opsPasswordFile}\nallow_anonymous true\n${options.extraConfig || ''}` };
}

// The retained $SYS/broker/bootstrap/<topic> as text; null when there is none (or no access).
async function readSys(env, topic, auth = OPS_AUTH) {
  const s = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(env.port), ...auth, '-t', '$SYS/broker/bootstrap/' + topic, '-C', '1', '-W', '2']);
  const v = s.stdout.replace(/\n$/, '');
  return v === '' ? null : v;
}

// Resolves with $SYS/broker/bootstrap/<topic> once ok(value) holds; fails after timeoutMs with the last value.
async function waitForSys(env, topic, ok, { timeoutMs = 15000, auth = OPS_AUTH } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await readSys(env, topic, auth);
    if (v !== null && ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`$SYS/broker/bootstrap/${topic} is ${JSON.stringify(v)} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

// The audit trail (pluginOptions audit_file '$DIR/audit.log', or file) as parsed JSON lines.
function auditLines(env, file = path.join(env.dir, 'audit.log')) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// Resolves with the audit lines for which match(line) holds once there are at least n of them;
// fails after timeoutMs with the lines it has.
async function waitForAudit(env, match, { n = 1, timeoutMs = 10000, file } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = auditLines(env, file).filter(match);
    if (got.length >= n) return got;
    if (Date.now() > deadline) throw new Error(`${got.length} of ${n} audit lines after ${timeoutMs} ms: ${JSON.stringify(got.slice(-5))}`);
    await sleep(50);
  }
}

Object.assign(module.exports, { OPS_AUTH, operatorOptions, readSys, waitForSys, auditLines, waitForAudit });
