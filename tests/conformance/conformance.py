#!/usr/bin/python3
"""Conformance driver for the independent client (bootstrap_client.py).

  conformance.py vectors CONTRACT_MD      every vector of docs/contract.md, reproduced exactly
  conformance.py run CONFIG_JSON          one scenario against a running broker + plugin

CONFIG_JSON: {"host", "port", "productKey", "productSecretFile", "scenario", "out", "format"};
the scenarios are main, allowlist, busy, clear and none, each in "format" json (the default) or
cbor (docs/contract.md, "CBOR": every request and reply of the scenario in CBOR) (tests/conformance/python.test.js starts the
broker and the emulator for each and checks the triples written to "out" against the
emulator's records). Prints one line per case, "ok" or "FAIL", and never a secret; exits 1 if
any case failed.
"""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bootstrap_client as bc  # noqa: E402
import cbor2  # noqa: E402

failures = []


def case(name):
    """Decorator-free case runner: check(name, fn) runs fn, records ok or FAIL."""
    def run(fn):
        try:
            fn()
            print('ok   ' + name, flush=True)
        except Exception as e:  # any failure of a case, an assertion or an unexpected answer
            failures.append(name)
            print('FAIL %s: %s: %s' % (name, type(e).__name__, e), flush=True)
    return run


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


# ---------------------------------------------------------------------------------------------
# The documented vectors, read from the document itself

def doc_vectors(path):
    with open(path, encoding='utf-8') as f:
        text = ' '.join(f.read().split())  # line breaks inside a sentence do not matter

    def grab(pattern):
        m = re.search(pattern, text)
        if not m:
            raise AssertionError('contract.md no longer has: ' + pattern)
        return m.groups()
    ps, pk, dev, rnd, signed = grab(r'For ProductSecret `([^`]+)`, ProductKey `([^`]+)`, deviceId `([^`]+)` and random `([^`]+)`, the string signed is `([^`]+)`')
    signs = {m: grab(r'\| `%s` \| `([0-9a-f]+)` \|' % m)[0] for m in bc.SIGN_METHODS}
    cbor_seal = grab(r'plaintext the `triple` map of the same four values, (\d+) bytes in hex `([0-9a-f]+)`: the CBOR tag is `([0-9a-f]{32})` and the CBOR ciphertext starts `([0-9a-f]+)`')
    seal = grab(r'ProductSecret `([^`]+)`, random `([^`]+)`, ProductKey `([^`]+)`, deviceId `([^`]+)` → K = `([0-9a-f]+)`\. With IV `([0-9a-f]+)` and plaintext `([^`]+)` the tag is `([0-9a-f]+)` and the ciphertext starts `([0-9a-f]+)`')
    pw = grab(r'clientId `([^`]+)`, DeviceName `([^`]+)`, ProductKey `([^`]+)`, timestamp `([^`]+)`, DeviceSecret `([^`]+)` → the string signed is `([^`]+)` and the password `([0-9A-Fa-f]+)`')
    return (ps, pk, dev, rnd, signed, signs), seal, pw, cbor_seal


def vectors(path):
    sign_v, seal_v, pw_v, cbor_v = doc_vectors(path)
    ps, pk, dev, rnd, signed, signs = sign_v

    @case('vector: the string signed')
    def _():
        expect(bc.sign_string(dev, pk, rnd) == signed, 'string differs')
    for method, want in signs.items():
        @case('vector: sign ' + method)
        def _(method=method, want=want):
            expect(bc.sign(method, ps, dev, pk, rnd) == want, 'sign differs')
    sps, srnd, spk, sdev, k_hex, iv_hex, plain, tag_hex, ct_start = seal_v

    @case('vector: sealed-reply key, tag, ciphertext, and the reply opens')
    def _():
        key = bc.seal_key(sps, srnd, spk, sdev)
        expect(key.hex() == k_hex, 'K differs')
        iv, ct, tag = bc.seal(key, plain.encode(), bytes.fromhex(iv_hex))
        expect(tag.hex() == tag_hex, 'tag differs')
        expect(ct.hex().startswith(ct_start), 'ciphertext differs')
        reply = {'success': True, 'sealed': {'alg': 'A128GCM', 'iv': bc.base64.b64encode(iv).decode(),
                                             'ct': bc.base64.b64encode(ct).decode(), 'tag': bc.base64.b64encode(tag).decode()}}
        expect(bc.open_sealed(reply, sps, srnd, spk, sdev) == json.loads(plain), 'opened triple differs')
        for wrong in ((sps + 'x', srnd, spk, sdev), (sps, srnd + 'x', spk, sdev), (sps, srnd, spk, 'dev-0002')):
            try:
                bc.open_sealed(reply, *wrong)
                raise AssertionError('opened with the wrong key')
            except bc.NotOurs:
                pass
    cbor_len, cbor_plain_hex, cbor_tag_hex, cbor_ct_start = cbor_v

    @case('vector: CBOR sealed reply: the triple map, tag, ciphertext, and the reply opens')
    def _():
        triple = json.loads(plain)
        cbor_plain = bc.encode(triple, 'cbor')  # the map, its keys in the contract's order
        expect(cbor_plain.hex() == cbor_plain_hex and len(cbor_plain) == int(cbor_len), 'CBOR plaintext differs')
        key = bc.seal_key(sps, srnd, spk, sdev)
        iv, ct, tag = bc.seal(key, cbor_plain, bytes.fromhex(iv_hex))
        expect(tag.hex() == cbor_tag_hex, 'tag differs')
        expect(ct.hex().startswith(cbor_ct_start), 'ciphertext differs')
        wire = bc.encode({'success': True, 'sealed': {'alg': 'A128GCM', 'iv': iv, 'ct': ct, 'tag': tag}}, 'cbor')
        reply = bc.parse_reply(wire, 'cbor')
        expect(bc.open_sealed(reply, sps, srnd, spk, sdev, 'cbor') == triple, 'opened triple differs')
        expect(bc.parse_reply(wire + b'\x00', 'cbor') is None, 'trailing bytes accepted')
        try:
            bc.open_sealed(reply, sps, srnd + 'x', spk, sdev, 'cbor')
            raise AssertionError('opened with the wrong key')
        except bc.NotOurs:
            pass
    cid, dn, ppk, ts, secret, pw_signed, pw_want = pw_v

    @case('vector: IoT Platform password, user name, client id')
    def _():
        expect('clientId' + cid + 'deviceName' + dn + 'productKey' + ppk + 'timestamp' + ts == pw_signed, 'string differs')
        client_id, user, password = bc.iot_connect_credentials(ppk, dn, secret, cid, int(ts))
        expect(password == pw_want, 'password differs')
        expect(user == dn + '&' + ppk, 'user name differs')
        expect(client_id == cid + '|securemode=3,signmethod=hmacsha1,timestamp=' + ts + '|', 'client id differs')


# ---------------------------------------------------------------------------------------------
# Against a broker

class Run:
    def __init__(self, cfg):
        self.cfg = cfg
        self.secret = None  # request_auth none: no ProductSecret
        if cfg.get('productSecretFile'):
            with open(cfg['productSecretFile'], encoding='utf-8') as f:
                self.secret = f.readline().rstrip('\n')  # the file's first line, without its newline
        self.pk = cfg['productKey']
        self.fmt = cfg.get('format', 'json')
        self.triples = {}

    def device(self, version, sealed=True):
        return bc.Device(self.cfg['host'], self.cfg['port'], self.pk, self.secret, version=version, sealed=sealed, fmt=self.fmt)

    def reply(self, device_id):
        """The reply topic of device_id in this run's format."""
        return bc.reply_topic(device_id, fmt=self.fmt)

    def encode(self, body):
        return bc.encode(body, self.fmt)

    def keep(self, triple):
        self.triples[triple['DeviceName']] = triple
        cid, user, password = bc.iot_connect_credentials(triple['ProductKey'], triple['DeviceName'], triple['DeviceSecret'])
        expect(re.fullmatch(re.escape(triple['DeviceName']) + r'\|securemode=3,signmethod=hmacsha1,timestamp=\d{13}\|', cid), 'IoT client id shape')
        expect(user == triple['DeviceName'] + '&' + triple['ProductKey'], 'IoT user name')
        expect(re.fullmatch(r'[0-9A-F]{40}', password), 'IoT password shape')

    def save(self):
        fd = os.open(self.cfg['out'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump(self.triples, f)

    def refused(self, client_id, payload, code, version=4, listen=None, response_topic=None, correlation=None, timeout=10):
        """Publishes payload (bytes or dict) as client_id; the answer must be error `code` on
        listen (default: the client id's reply topic). Returns the reply and the message."""
        conn = bc.Connection(self.cfg['host'], self.cfg['port'], client_id, version)
        try:
            listen = listen or self.reply(client_id)
            conn.subscribe(listen)
            data = self.encode(payload) if isinstance(payload, dict) else payload
            conn.publish(bc.request_topic(self.fmt), data, response_topic=response_topic, correlation=correlation)
            m = conn.next_message(timeout)
            expect(m is not None, 'no answer on ' + listen)
            expect(m['topic'] == listen, 'answer on another topic')
            reply = bc.parse_reply(m['payload'], self.fmt)
            expect(reply is not None and reply['success'] is False, 'not an error reply (in %s)' % self.fmt)
            if self.fmt == 'cbor':  # deterministic: the keys in the CDDL's order
                want = ['success', 'code', 'message'] + (['retryAfter'] if 'retryAfter' in reply else [])
                expect(list(reply) == want, 'keys %s' % list(reply))
            expect(not bc.check_error(reply), 'error reply shape: %s' % bc.check_error(reply))
            expect(reply['code'] == code, 'code %s, expected %s' % (reply['code'], code))
            expect(m['qos'] == 0 and not m['retain'], 'error replies are QoS 0, not retained')
            return reply, m
        finally:
            conn.close()

    def signed(self, device_id, **kw):
        return bc.request_payload(device_id, kw.pop('product_key', self.pk), kw.pop('secret', self.secret), **kw)[0]

    # -- scenario main: the default broker (sign, sealed replies), batching off
    def main(self):
        for version in (4, 5):
            for method in bc.SIGN_METHODS:
                dev_id = 'py-v%d-%s' % (version, method[4:])

                @case('MQTT %s, %s: a new device gets its sealed triple, and the same one when it asks again' % ('5' if version == 5 else '3.1.1', method))
                def _():
                    d = self.device(version)
                    rt = self.reply(dev_id) if version == 5 else None
                    first = d.bootstrap(dev_id, method, response_topic=rt)
                    second = d.bootstrap(dev_id, method, response_topic=rt)
                    expect(first == second, 'the second answer differs from the first')
                    expect(d.log == [('ok', None), ('ok', None)], 'answers: %s' % d.log)
                    self.keep(first)

        @case('MQTT 5 with Correlation Data: reply on the Response Topic, correlation echoed, QoS 0, not retained')
        def _():
            d = self.device(5)
            conn = d.connect('py-v5-corr')
            try:
                rt = self.reply('py-v5-corr')
                triple, _, m = d.ask(conn, 'py-v5-corr', response_topic=rt)
                expect(m['topic'] == rt and len(m.get('correlation', b'')) == 16, 'correlation not echoed')
                expect(m['qos'] == 0 and not m['retain'], 'the triple is QoS 0 to the connection that asked, never retained')
                self.keep(triple)
            finally:
                conn.close()

        @case('MQTT 5, Response Topic one level below the reply topic')
        def _():
            self.keep(self.device(5).bootstrap('py-v5-below', response_topic=self.reply('py-v5-below') + '/7'))

        @case('MQTT 5 without a Response Topic: the reply topic')
        def _():
            self.keep(self.device(5).bootstrap('py-v5-plain'))

        for qos in (0, 2):
            @case('a request published at QoS %d' % qos)
            def _(qos=qos):
                d = self.device(4)
                conn = d.connect('py-qos-%d' % qos)
                try:
                    triple, _, m = d.ask(conn, 'py-qos-%d' % qos, qos=qos)
                    expect(m['qos'] == 0, 'the triple comes at QoS 0 to the connection that asked, whatever the request\'s')
                    self.keep(triple)
                finally:
                    conn.close()

        @case('MQTT 5 with Correlation Data and no Response Topic: the reply topic, correlation echoed')
        def _():
            d = self.device(5)
            conn = d.connect('py-v5-corr2')
            try:
                triple, _, m = d.ask(conn, 'py-v5-corr2', correlation=b'corr-2')
                expect(m['topic'] == self.reply('py-v5-corr2') and m.get('correlation') == b'corr-2', 'correlation not echoed')
                self.keep(triple)
            finally:
                conn.close()

        @case('the productKey member, as in Alibaba\'s registration request')
        def _():
            self.keep(self.device(4).bootstrap('py-pk-0001', send_product_key=True))

        @case('an existing device (created before, never asked): its own triple')
        def _():
            d = self.device(5)
            a = d.bootstrap('py-pre-0001', response_topic=self.reply('py-pre-0001'))
            b = d.bootstrap('py-pre-0001', method='hmacsha1')
            expect(a == b, 'the second answer differs')
            self.keep(a)

        # Refusals. Each on a client id of its own (10 refusals a minute per client id).
        good = self.signed('py-ir-0001')

        @case('invalid_request: a sign that is not hex of the method\'s length')
        def _():
            self.refused('py-ir-0001', dict(good, sign=good['sign'][:-2]), 'invalid_request')

        if self.fmt == 'json':
            @case('invalid_request: not JSON')
            def _():
                self.refused('py-ir-0002', b'{"deviceId":', 'invalid_request')
        else:
            # what the CBOR section says a request may not be, each on a client id of its own
            ok = self.encode(self.signed('py-ir-0002'))
            item = lambda v: cbor2.dumps(v)  # noqa: E731
            kv = item('deviceId') + item('py-ir-0002')
            for n, (what, payload) in enumerate((
                    ('truncated', ok[:-3]),
                    ('trailing bytes', ok + b'\x00'),
                    ('an indefinite-length map', b'\xbf' + kv + b'\xff'),
                    ('a tag', b'\xd9\xd9\xf7' + ok),
                    ('a key twice', b'\xa2' + kv + kv),
                    ('a key that is not text', b'\xa2' + kv + item(1) + item('x')),
                    ('a CBOR array, not a map', item(['py-ir-0002'])),
                    ('the bare deviceId as text (no bare form in CBOR)', b'py-ir-0002'),
                    ('deviceId a byte string', item({'deviceId': b'py-ir-0002'})))):
                @case('invalid_request: CBOR: %s' % what)
                def _(n=n, payload=payload):
                    self.refused('py-ir-c%03d' % n, payload, 'invalid_request')

        @case('invalid_request: an unknown signMethod')
        def _():
            self.refused('py-ir-0003', dict(self.signed('py-ir-0003'), signMethod='hmacsha512'), 'invalid_request')

        @case('invalid_request: a random that breaks its rule (too short)')
        def _():
            self.refused('py-ir-0004', self.signed('py-ir-0004', random='short'), 'invalid_request')

        @case('invalid_request: signed members missing (random and sign without signMethod)')
        def _():
            p = self.signed('py-ir-0005')
            del p['signMethod']
            self.refused('py-ir-0005', p, 'invalid_request')

        @case('invalid_request: MQTT 5 Response Topic outside the prefix, answered on the client id\'s reply topic')
        def _():
            self.refused('py-ir-0006', self.signed('py-ir-0006'), 'invalid_request', version=5, response_topic='elsewhere/py-ir-0006', correlation=b'c1')

        @case('invalid_request: MQTT 5 Correlation Data over 256 bytes')
        def _():
            self.refused('py-ir-0007', self.signed('py-ir-0007'), 'invalid_request', version=5,
                         response_topic=self.reply('py-ir-0007'), correlation=os.urandom(257))

        @case('invalid_device_id: a deviceId that breaks the DeviceName rules, answered to the requesting client id')
        def _():
            self.refused('py-idi-0001', self.signed('ab'), 'invalid_device_id')

        @case('unauthorized: a well-formed sign that does not verify')
        def _():
            self.refused('py-un-0001', self.signed('py-un-0001', secret=self.secret + 'x'), 'unauthorized')

        @case('unauthorized: unsigned')
        def _():
            self.refused('py-un-0002', {'deviceId': 'py-un-0002'}, 'unauthorized')

        @case('unauthorized: a random used before (replay)')
        def _():
            d = self.device(4)
            conn = d.connect('py-un-0003')
            try:
                triple, random, _ = d.ask(conn, 'py-un-0003')
                self.keep(triple)
                try:
                    d.ask(conn, 'py-un-0003', random=random, subscribe=False)
                    raise AssertionError('a replayed request was served')
                except bc.BootstrapError as e:
                    expect(e.code == 'unauthorized' and e.retry_after is None, 'code %s' % e.code)
            finally:
                conn.close()

        @case('unauthorized: a product this broker does not serve')
        def _():
            self.refused('py-un-0004', self.signed('py-un-0004', product_key='a1NotServed', send_product_key=True), 'unauthorized')

        @case('unauthorized: asked under another client id than the deviceId')
        def _():
            self.refused('py-un-0005x', self.signed('py-un-0005'), 'unauthorized')

        @case('MQTT 5: a refusal goes to the Response Topic with the Correlation Data')
        def _():
            rt = self.reply('py-un-0006') + '/e'
            _, m = self.refused('py-un-0006', self.signed('py-un-0006', secret=self.secret + 'x'), 'unauthorized',
                                version=5, listen=rt, response_topic=rt, correlation=b'corr-6')
            expect(m.get('correlation') == b'corr-6', 'correlation not echoed on the refusal')

        @case('rate_limited: the 10th refusal in a minute, with retryAfter; then silence; a valid request still served')
        def _():
            cid = 'py-rl-0001'
            d = self.device(4)
            conn = d.connect(cid)
            try:
                conn.subscribe(self.reply(cid))
                codes = []
                for i in range(10):
                    conn.publish(bc.request_topic(self.fmt), self.encode(self.signed(cid, secret=self.secret + 'x')))
                    m = conn.next_message(10)
                    expect(m is not None, 'no answer to refusal %d' % (i + 1))
                    r = bc.parse_reply(m['payload'], self.fmt)
                    expect(not bc.check_error(r), 'error reply shape')
                    codes.append(r['code'])
                    if i == 9:
                        expect(isinstance(r.get('retryAfter'), int) and 1 <= r['retryAfter'] <= 60, 'retryAfter missing or out of 1..60')
                expect(codes == ['unauthorized'] * 9 + ['rate_limited'], 'codes: %s' % codes)
                conn.publish(bc.request_topic(self.fmt), self.encode(self.signed(cid, secret=self.secret + 'x')))
                expect(conn.next_message(2) is None, 'a refused request after rate_limited was answered')
                triple, _, _ = d.ask(conn, cid, subscribe=False)
                self.keep(triple)
            finally:
                conn.close()

    # -- scenario allowlist: device_allowlist admits py-al-*
    def allowlist(self):
        @case('allowlist: a listed device is served')
        def _():
            self.keep(self.device(5).bootstrap('py-al-0001'))

        @case('not_allowed: a deviceId not on the allowlist, after a valid sign')
        def _():
            r, _ = self.refused('py-xx-0001', self.signed('py-xx-0001'), 'not_allowed')
            expect('retryAfter' not in r, 'not_allowed has no retryAfter')

        @case('allowlist: a bad sign is unauthorized, whether listed or not (the list is not revealed)')
        def _():
            self.refused('py-xx-0002', self.signed('py-xx-0002', secret=self.secret + 'x'), 'unauthorized')

    # -- scenario busy: max_inflight 1, max_queue 1 and a slow platform
    def busy(self):
        @case('busy: told to retry after whole seconds, the devices that follow retryAfter are all served')
        def _():
            devices = [self.device(4 if i % 2 else 5) for i in range(5)]
            ids = ['py-busy-%04d' % i for i in range(5)]
            results = bc.run_threads([lambda d=d, i=i: d.bootstrap(i, max_tries=20) for d, i in zip(devices, ids)])
            for i, r in zip(ids, results):
                expect(isinstance(r, dict), '%s: %s' % (i, r if isinstance(r, Exception) else 'no triple'))
                self.keep(r)
            told = [entry for d in devices for entry in d.log if entry[0] == 'busy']
            expect(told, 'no device was told busy')
            expect(all(isinstance(ra, int) and ra >= 1 for _, ra in told), 'busy without a whole retryAfter')
            expect(all(entry[0] in ('ok', 'busy') for d in devices for entry in d.log), 'other codes: %s' % [d.log for d in devices])
            print('     (%d busy answers, retryAfter %s)' % (len(told), sorted({ra for _, ra in told})), flush=True)

    # -- scenario clear: reply_encryption off
    def clear(self):
        for version in (4, 5):
            @case('reply_encryption off, MQTT %s: the triple in the clear' % ('5' if version == 5 else '3.1.1'))
            def _(version=version):
                d = self.device(version, sealed=False)
                conn = d.connect('py-clr-%d' % version)
                try:
                    triple, _, m = d.ask(conn, 'py-clr-%d' % version)
                    reply = bc.parse_reply(m['payload'], self.fmt)
                    expect('data' in reply and 'sealed' not in reply, 'not in the clear')
                    if self.fmt == 'cbor':
                        expect(list(reply) == ['success', 'data'] and list(reply['data']) == ['ProductKey', 'DeviceName', 'DeviceSecret', 'IotId'],
                               'keys out of the contract\'s order')
                    self.keep(triple)
                finally:
                    conn.close()

        @case('a device that expects a sealed reply rejects one in the clear (and keeps waiting)')
        def _():
            d = self.device(4, sealed=True)
            conn = d.connect('py-clr-0003')
            try:
                d.ask(conn, 'py-clr-0003', timeout=4)
                raise AssertionError('accepted a reply in the clear')
            except TimeoutError:
                pass
            finally:
                conn.close()


    # -- scenario none: request_auth none (the triple in the clear, at QoS 1 to the deviceId's client)
    def none(self):
        if self.fmt == 'json':
            asks = (('the bare deviceId', 'py-none-0001', b'py-none-0001'),
                    ('the bare deviceId with white space around it', 'py-none-0002', b'  py-none-0002\n'),
                    ('{"deviceId":…}', 'py-none-0003', json.dumps({'deviceId': 'py-none-0003'})))
        else:
            asks = (('{"deviceId"}', 'py-none-0001', self.encode({'deviceId': 'py-none-0001'})),
                    ('{"deviceId"} and members of other types, ignored', 'py-none-0002',
                     self.encode({'n': 1, 'deviceId': 'py-none-0002', 'x': [b'\x00', None, 1.5, {'y': True}]})),
                    ('{"deviceId", "productKey"}', 'py-none-0003', self.encode({'deviceId': 'py-none-0003', 'productKey': self.pk})))

            @case('request_auth none, CBOR: the bare deviceId is no CBOR request')
            def _():
                self.refused('py-none-0006', b'py-none-0006', 'invalid_request')
        for name, dev_id, payload in asks:
            @case('request_auth none, %s: the triple in the clear, QoS 1' % name)
            def _(dev_id=dev_id, payload=payload):
                d = self.device(4, sealed=False)
                conn = d.connect(dev_id)
                try:
                    triple, _, m = d.ask(conn, dev_id, payload=payload)
                    expect(m['qos'] == 1, 'with none the triple comes at QoS 1')
                    self.keep(triple)
                finally:
                    conn.close()

        @case('request_auth none: another client asks, the deviceId\'s client gets the triple')
        def _():
            d = self.device(5, sealed=False)
            conn = d.connect('py-none-0004')
            other = bc.Connection(self.cfg['host'], self.cfg['port'], 'py-none-asker', 4)
            try:
                conn.subscribe(self.reply('py-none-0004'))
                other.subscribe(self.reply('py-none-asker'))
                other.publish(bc.request_topic(self.fmt), self.encode({'deviceId': 'py-none-0004'}))
                m = conn.next_message(15)
                expect(m is not None, 'the device got nothing')
                reply = bc.parse_reply(m['payload'], self.fmt)
                expect(reply and reply['success'], 'not a success')
                self.keep(bc.check_triple(reply['data'], self.pk, 'py-none-0004'))
                expect(other.next_message(1) is None, 'the asker got an answer')
            finally:
                other.close()
                conn.close()

        @case('request_auth none, MQTT 5: Response Topic and Correlation Data')
        def _():
            d = self.device(5, sealed=False)
            conn = d.connect('py-none-0005')
            try:
                rt = self.reply('py-none-0005') + '/1'
                triple, _, m = d.ask(conn, 'py-none-0005', response_topic=rt,
                                     payload=b'py-none-0005' if self.fmt == 'json' else self.encode({'deviceId': 'py-none-0005'}))
                expect(m['topic'] == rt and len(m.get('correlation', b'')) == 16, 'not on the Response Topic with its correlation')
                self.keep(triple)
            finally:
                conn.close()

        @case('request_auth none: invalid_device_id to the requesting client')
        def _():
            self.refused('py-none-bad', b'x' if self.fmt == 'json' else self.encode({'deviceId': 'x'}), 'invalid_device_id')


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ('vectors', 'run'):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == 'vectors':
        vectors(sys.argv[2])
    else:
        with open(sys.argv[2], encoding='utf-8') as f:
            cfg = json.load(f)
        run = Run(cfg)
        t0 = time.monotonic()
        getattr(run, cfg['scenario'])()
        run.save()
        print('     scenario %s (%s): %d devices served in %.1f s' % (cfg['scenario'], run.fmt, len(run.triples), time.monotonic() - t0), flush=True)
    if failures:
        print('%d case(s) failed' % len(failures), flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
