'use strict';
// The README's quick start ("Your own broker in five commands") in a fresh Debian container
// without systemd: the ```sh block of that section, read from README.md now (the test runs
// whatever the README says today), run as written, in one bash shell, as root, from a copy of
// the checkout, inside a Debian bookworm root made by debootstrap --variant=minbase with only
// the README's dependency step (scripts/install-deps) run in it (scripts/quickstart-root, which
// scripts/test runs before the tests: it needs the network). The container: an overlay of its
// own on that root (never changed), chroot in new mount, PID and network namespaces with its
// own /proc and only loopback; no init, no service running. It must give a served device: the
// triple file, mode 0600, holding the emulator's own record of dev-0001, and the broker's log
// saying the plugin sent it. Every process in the namespace ends with the test.
const test = require('node:test');
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const docs = require('./lib/docs');

const ROOT = docs.ROOT;
const BUILD = process.env.BOOTSTRAP_BUILD_DIR || path.join(ROOT, 'build-test');
const LOWER = path.join(BUILD, 'quickstart-root');
const SECTION = 'Your own broker in five commands';

// the ```sh block of the README's quick start section, as the README has it now
function quickStart() {
  const lines = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n');
  const start = lines.findIndex((l) => l === `## ${SECTION}`);
  assert.ok(start >= 0, `README.md has a section "${SECTION}"`);
  let end = lines.findIndex((l, i) => i > start && /^#{1,2} /.test(l));
  if (end < 0) end = lines.length;
  const mine = docs.blocks('README.md').filter((b) => b.lang === 'sh' && b.line > start && b.line <= end);
  assert.strictEqual(mine.length, 1, `one sh block in the README's "${SECTION}"`);
  return mine[0];
}

// What a test may print of a command's output: no DeviceSecret, no platform password.
function masked(text) {
  return text.replace(/("DeviceSecret":")[^"]*/g, '$1(masked)').replace(/(password\s+)\S+/g, '$1(masked)');
}

// the checkout as it is on disk (uncommitted changes included), without build trees,
// node_modules or .git, as scripts/quickstart-root copies it
function copyCheckout(dest) {
  fs.mkdirSync(dest, { recursive: true });
  const git = spawnSync('git', ['-C', ROOT, 'ls-files', '-z', '-c', '-o', '--exclude-standard'], { encoding: 'utf8' });
  if (git.status !== 0) { // not a git checkout (a tarball): all of it but build trees and node_modules
    fs.cpSync(ROOT, dest, { recursive: true, verbatimSymlinks: true, filter: (f) => !(path.dirname(f) === ROOT && /^(build|\.git$)/.test(path.basename(f))) && path.basename(f) !== 'node_modules' });
    return fs.readdirSync(dest, { recursive: true }).length;
  }
  const files = git.stdout.split('\0').filter((f) => f && fs.existsSync(path.join(ROOT, f)));
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(dest, f)), { recursive: true });
    fs.cpSync(path.join(ROOT, f), path.join(dest, f), { verbatimSymlinks: true });
  }
  return files.length;
}

// Runs in the new namespaces (PID 1 there), before chroot: mounts the container, starts what
// the scenario says the system runs (/quickstart-test/system.sh), runs the user's commands,
// reads the emulator's record with the host's curl, and ends every process of the namespace.
const INNER = String.raw`
set -u
LOWER=$1 RUN=$2
M=$RUN/merged
ip link set lo up
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$RUN/upper,workdir=$RUN/work" "$M"
mount -t proc proc "$M/proc"
mount -t sysfs -o ro sysfs "$M/sys"
mount -t tmpfs -o nosuid,mode=755 tmpfs "$M/dev"
for n in null zero full random urandom tty; do touch "$M/dev/$n"; mount --bind "/dev/$n" "$M/dev/$n"; done
mkdir "$M/dev/pts" "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$M/dev/pts" && ln -s pts/ptmx "$M/dev/ptmx"
mount -t tmpfs -o nosuid,nodev tmpfs "$M/dev/shm"
ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"; ln -s /proc/self/fd/1 "$M/dev/stdout"; ln -s /proc/self/fd/2 "$M/dev/stderr"
IN="chroot $M /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root"
echo "### processes before the quick start:"; $IN ps -e -o pid=,comm=; echo "### end"
[ -d "$M/run/systemd/system" ] && echo "### systemd is running"
[ -f "$M/quickstart-test/system.sh" ] && $IN sh -e /quickstart-test/system.sh
$IN bash -c 'cd /root/mosquitto-bootstrap && exec bash -e -o pipefail /quickstart-test/commands.sh'
echo "### exit $?"
curl -sS --max-time 10 -o "$RUN/out/dev-0001.json" 'http://127.0.0.1:8080/_emulator/device?productKey=a1BootstrapDemo&name=dev-0001'
echo "### processes after:"; $IN ps -e -o pid=,comm=; echo "### end"
kill -TERM -1 2>/dev/null
sleep 1
kill -KILL -1 2>/dev/null
exit 0
`;

// A fresh container (an overlay on the prepared root) with the checkout of the moment copied
// in; runs the README's quick start in it, after `system` (commands of the system's own, or
// none). Returns what it printed, and a reader of files the container wrote; the run's
// directory (secrets included) goes when `body` returns.
async function inContainer(system, body) {
  assert.strictEqual(process.getuid(), 0, 'the container needs root (namespaces, chroot, overlay)');
  const check = spawnSync(path.join(ROOT, 'scripts/quickstart-root'), ['--check', BUILD], { encoding: 'utf8' });
  assert.strictEqual(check.status, 0, `the container's root file system: ${check.stdout}${check.stderr}`);
  const block = quickStart();
  const run = fs.mkdtempSync(path.join(BUILD, 'quickstart-run-'));
  try {
    for (const d of ['upper', 'work', 'merged', 'out', 'upper/quickstart-test']) fs.mkdirSync(path.join(run, d));
    fs.mkdirSync(path.join(run, 'upper/root'), { mode: 0o700 });
    const n = copyCheckout(path.join(run, 'upper/root/mosquitto-bootstrap'));
    console.log(`# README.md:${block.line}: ${block.text.trim().split('\n').length} commands; the checkout: ${n} files into /root/mosquitto-bootstrap of ${path.relative(ROOT, LOWER)}`);
    // the user's shell: the block as written, then where the quick start put its files
    fs.writeFileSync(path.join(run, 'upper/quickstart-test/commands.sh'), `${block.text}printf '%s' "$D" >/quickstart-test/D\n`);
    if (system) fs.writeFileSync(path.join(run, 'upper/quickstart-test/system.sh'), system);
    const started = Date.now();
    const child = spawn('unshare', ['--mount', '--pid', '--fork', '--net', '--propagation', 'private', 'sh', '-c', INNER, 'sh', LOWER, run],
      { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 270000); // its PID namespace ends with it
      child.on('close', (c) => { clearTimeout(timer); resolve(c); });
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    const tail = () => masked(out).split('\n').slice(-40).join('\n');
    assert.strictEqual(code, 0, `the container:\n${tail()}`);
    const before = /### processes before the quick start:\n([\s\S]*?)### end/.exec(out)[1].trim().split('\n').map((l) => l.trim().split(/\s+/)[1]);
    assert.deepStrictEqual(before.sort(), ['ps', 'sh'], 'nothing runs in the container but this test\'s shell');
    assert.doesNotMatch(out, /### systemd is running/);
    const exit = Number(/### exit (\d+)\n/.exec(out)[1]);
    const after = /### processes after:\n([\s\S]*?)### end/.exec(out)[1];
    const file = (p) => path.join(run, 'upper', p);
    const D = fs.existsSync(file('quickstart-test/D')) ? fs.readFileSync(file('quickstart-test/D'), 'utf8') : null;
    await body({ out, exit, after, tail, seconds, D, file, emulatorRecord: path.join(run, 'out/dev-0001.json') });
  } finally {
    // the PID namespace ended with its first process, the mounts with the mount namespace;
    // what the run wrote (the triple, the secrets) goes too
    if (!process.env.QUICKSTART_KEEP) fs.rmSync(run, { recursive: true, force: true });
  }
}

test('the README\'s quick start, run as written in a fresh Debian container without systemd, serves a device', async () => {
  await inContainer(null, async ({ out, exit, after, tail, seconds, D, file, emulatorRecord }) => {
    assert.strictEqual(exit, 0, `a quick start command failed as written:\n${tail()}`);
    assert.match(D || '', /^\/\S+$/, 'the quick start\'s $D');
    const tripleFile = file(path.join(D, 'dev-0001.triple'));
    assert.ok(fs.existsSync(tripleFile), '$D/dev-0001.triple: the triple of dev-0001');
    assert.strictEqual(fs.statSync(tripleFile).mode & 0o777, 0o600, 'the triple file is mode 0600');
    const triple = JSON.parse(fs.readFileSync(tripleFile, 'utf8'));
    const device = JSON.parse(fs.readFileSync(emulatorRecord, 'utf8'));
    assert.ok(device && typeof device.DeviceSecret === 'string' && device.DeviceSecret.length > 0, 'the emulator registered dev-0001');
    assert.strictEqual(triple.ProductKey, device.ProductKey, 'ProductKey: the emulator\'s');
    assert.strictEqual(triple.DeviceName, device.DeviceName, 'DeviceName: the emulator\'s');
    assert.strictEqual(triple.DeviceName, 'dev-0001');
    assert.ok(triple.DeviceSecret === device.DeviceSecret, 'DeviceSecret: the one the emulator holds for dev-0001 (not printed)');
    const brokerLog = fs.readFileSync(file(path.join(D, 'broker.log')), 'utf8');
    assert.match(brokerLog, /mosquitto_bootstrap: device dev-0001: triple sent sealed \(new device, product a1BootstrapDemo/, 'the broker\'s log: the plugin served dev-0001');
    assert.ok(!brokerLog.includes(device.DeviceSecret) && !out.includes(device.DeviceSecret), 'the DeviceSecret appears in no log or output');
    assert.match(after, /mosquitto/, 'the broker was still running');
    assert.match(after, /node/, 'the emulator was still running');
    console.log(`# in the container (${seconds} s, the build included): dev-0001 served, its triple (mode 0600) the emulator's own; `
      + `the quick start's broker: ${(/mosquitto_bootstrap: platform check: [^\n]*/.exec(brokerLog) || ['no platform check logged'])[0]}`);
  });
});

// Where systemd runs, installing Debian's mosquitto starts the system broker on 1883 (its
// unit: a runtime directory, then `mosquitto -c /etc/mosquitto/mosquitto.conf`). The README
// says so; its commands must stop at the broker that cannot listen and show why, not leave
// the device waiting for an answer that cannot come.
test('where Debian\'s own broker holds port 1883, the quick start stops at its broker and prints why', async () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  assert.match(readme, /systemctl stop mosquitto/, 'the README says how to stop the system broker');
  const system = 'mkdir -p /run/mosquitto && chown mosquitto: /run/mosquitto && mosquitto -c /etc/mosquitto/mosquitto.conf -d && sleep 0.5\n';
  await inContainer(system, async ({ out, exit, after, tail, seconds }) => {
    assert.notStrictEqual(exit, 0, `the quick start went on with its broker not running:\n${tail()}`);
    assert.match(out, /Error: Address already in use/, `the broker's log, printed:\n${tail()}`);
    assert.doesNotMatch(out, /no answer from the bootstrap broker/, 'the device program was not left to wait');
    assert.match(after, /mosquitto/, 'the system broker still ran');
    console.log(`# with the system broker on 1883 (${seconds} s): the quick start stopped at its broker, printing "Error: Address already in use"`);
  });
});
