"""An independent mosquitto-bootstrap device client, written from docs/contract.md alone.

Python 3 with Debian's python3-paho-mqtt (MQTT 3.1.1 and 5), python3-cryptography (HMAC,
HKDF, AES-GCM) and python3-cbor2 (CBOR): another language and other libraries than the plugin's,
so that the test suite shows an outsider can implement the device contract from the
documentation.

What it implements (section names of docs/contract.md):
- the request (Topic and payload contract): deviceId, optional productKey, random, signMethod
  (hmacsha256, hmacsha1, hmacmd5) and sign;
- the reply: on the device's reply topic (MQTT 3.1.1 and 5), or on an MQTT 5 Response Topic with
  Correlation Data echoed; a sealed success reply opened (Sealed replies), a reply in the clear
  when the caller expects one, an error reply with its code and retryAfter (Error codes),
  followed with a new random;
- the IoT Platform connect credentials (What the device does with the triple);
- all of it in CBOR too (CBOR: the CDDL there): fmt='cbor' sends the request map on the request
  topic plus /cbor and reads the reply on the reply topic plus /cbor, iv, ct and tag as byte
  strings and the sealed plaintext a CBOR map.

No function here prints anything: a caller decides what to show, and never a secret.
"""

import base64
import hashlib
import hmac
import io
import json
import os
import queue
import secrets
import threading
import time

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

REQUEST_TOPIC = 'bootstrap/register'
REPLY_TEMPLATE = 'bootstrap/reply/{deviceId}'
CBOR_SUFFIX = '/cbor'  # on the request topic and on the reply topic
FORMATS = ('json', 'cbor')
SIGN_METHODS = {'hmacsha256': hashlib.sha256, 'hmacsha1': hashlib.sha1, 'hmacmd5': hashlib.md5}
SEAL_INFO = b'mosquitto-bootstrap/v1/reply'
RANDOM_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'


# ---------------------------------------------------------------------------------------------
# Crypto of the contract

def new_random(length=16):
    """A request's random: 8 to 64 of A-Z a-z 0-9 - _ . (fresh for every request)."""
    return ''.join(secrets.choice(RANDOM_ALPHABET) for _ in range(length))


def sign_string(device_id, product_key, random):
    return 'deviceName' + device_id + 'productKey' + product_key + 'random' + random


def sign(method, product_secret, device_id, product_key, random):
    """hex(HMAC-<method>(ProductSecret, "deviceName"+deviceId+"productKey"+ProductKey+"random"+random))"""
    digest = SIGN_METHODS[method]
    return hmac.new(product_secret.encode(), sign_string(device_id, product_key, random).encode(), digest).hexdigest()


def seal_key(product_secret, random, product_key, device_id):
    """K = HKDF-SHA256(IKM=ProductSecret, salt=random, info="mosquitto-bootstrap/v1/reply"\\0PK\\0deviceId), 16 bytes."""
    info = SEAL_INFO + b'\x00' + product_key.encode() + b'\x00' + device_id.encode()
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=random.encode(), info=info).derive(product_secret.encode())


def seal(key, plaintext, iv=None):
    """What the service does (for the vector): AES-128-GCM, no AAD; returns (iv, ct, tag)."""
    iv = iv if iv is not None else os.urandom(12)
    out = AESGCM(key).encrypt(iv, plaintext, None)
    return iv, out[:-16], out[-16:]


class NotOurs(Exception):
    """A reply this request's key cannot open, or one that is not for this device: ignore it."""


def cbor_decode(payload):
    """Exactly one CBOR item filling payload (trailing bytes are not CBOR of ours); raises
    ValueError otherwise."""
    fp = io.BytesIO(bytes(payload))
    try:
        item = cbor2.CBORDecoder(fp).decode()
    except Exception as e:  # cbor2's decode errors, truncation
        raise ValueError('not CBOR') from e
    if fp.tell() != len(payload):
        raise ValueError('trailing bytes after the CBOR item')
    return item


def open_sealed(reply, product_secret, random, product_key, device_id, fmt='json'):
    """Opens {"success":true,"sealed":{...}} into the triple, or raises NotOurs. In CBOR iv, ct
    and tag are byte strings and the plaintext is the triple as a CBOR map."""
    s = reply.get('sealed')
    if not isinstance(s, dict) or s.get('alg') != 'A128GCM':
        raise NotOurs('not sealed with A128GCM')
    try:
        if fmt == 'cbor':
            iv, ct, tag = s['iv'], s['ct'], s['tag']
            if not all(isinstance(b, bytes) for b in (iv, ct, tag)):
                raise TypeError('iv, ct, tag must be byte strings')
        else:
            iv = base64.b64decode(s['iv'], validate=True)
            ct = base64.b64decode(s['ct'], validate=True)
            tag = base64.b64decode(s['tag'], validate=True)
    except Exception as e:  # missing member, not a string, not base64
        raise NotOurs('sealed members unreadable') from e
    if len(iv) != 12 or len(tag) != 16:
        raise NotOurs('iv or tag of the wrong length')
    try:
        plain = AESGCM(seal_key(product_secret, random, product_key, device_id)).decrypt(iv, ct + tag, None)
        triple = cbor_decode(plain) if fmt == 'cbor' else json.loads(plain)
    except Exception as e:  # InvalidTag: a forgery, or sealed for another request
        raise NotOurs('does not open with this request\'s key') from e
    return check_triple(triple, product_key, device_id)


def check_triple(triple, product_key, device_id):
    if not isinstance(triple, dict):
        raise NotOurs('the triple is not an object')
    for k in ('ProductKey', 'DeviceName', 'DeviceSecret', 'IotId'):
        if not isinstance(triple.get(k), str) or not triple[k]:
            raise NotOurs('the triple has no ' + k)
    if triple['DeviceName'] != device_id or triple['ProductKey'] != product_key:
        raise NotOurs('the triple is for another device')
    return triple


def iot_connect_credentials(product_key, device_name, device_secret, client_id=None, timestamp_ms=None, securemode=3):
    """The IoT Platform's MQTT connect parameters: (client id, user name, password)."""
    client_id = device_name if client_id is None else client_id
    t = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    signed = 'clientId' + client_id + 'deviceName' + device_name + 'productKey' + product_key + 'timestamp' + t
    password = hmac.new(device_secret.encode(), signed.encode(), hashlib.sha1).hexdigest().upper()
    mqtt_client_id = '%s|securemode=%d,signmethod=hmacsha1,timestamp=%s|' % (client_id, securemode, t)
    return mqtt_client_id, device_name + '&' + product_key, password


def iot_endpoint(product_key, region):
    """An old public instance's endpoint; other instances show theirs in the console."""
    return '%s.iot-as-mqtt.%s.aliyuncs.com' % (product_key, region), 1883


# ---------------------------------------------------------------------------------------------
# MQTT

class Connection:
    """One MQTT connection (3.1.1 or 5) whose messages arrive in a queue."""

    def __init__(self, host, port, client_id, version=5, timeout=10):
        self.version = version
        self.messages = queue.Queue()
        self._events = queue.Queue()
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kwargs = {'client_id': client_id, 'protocol': proto}
        if version != 5:
            kwargs['clean_session'] = True
        if hasattr(mqtt, 'CallbackAPIVersion'):  # paho-mqtt 2.x (Debian 13); 1.6 has no such argument
            kwargs['callback_api_version'] = mqtt.CallbackAPIVersion.VERSION1
        self.client = mqtt.Client(**kwargs)
        self.client.on_connect = lambda c, u, flags, rc, *p: self._events.put(('connack', rc))
        self.client.on_subscribe = lambda c, u, mid, granted, *p: self._events.put(('suback', mid, granted))
        self.client.on_disconnect = lambda c, u, rc, *p: self._events.put(('disconnect', rc))
        self.client.on_message = self._on_message
        if version == 5:
            self.client.connect(host, port, keepalive=30, clean_start=True)
        else:
            self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        ev = self._event('connack', timeout)
        if int(getattr(ev[1], 'value', ev[1])) != 0:
            self.close()
            raise ConnectionError('CONNACK refused: %s' % ev[1])

    def _on_message(self, client, userdata, msg):
        props = {}
        p = getattr(msg, 'properties', None)
        if p is not None:
            if hasattr(p, 'CorrelationData'):
                props['correlation'] = bytes(p.CorrelationData)
            if hasattr(p, 'ResponseTopic'):
                props['response_topic'] = p.ResponseTopic
        self.messages.put({'topic': msg.topic, 'payload': bytes(msg.payload), 'qos': msg.qos, 'retain': bool(msg.retain), **props})

    def _event(self, kind, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no ' + kind)
            ev = self._events.get(timeout=left)
            if ev[0] == kind:
                return ev

    def subscribe(self, topic, qos=1, timeout=10):
        """Subscribes and waits for the SUBACK; raises if the broker refused it."""
        rc, mid = self.client.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError('subscribe failed: %d' % rc)
        while True:
            ev = self._event('suback', timeout)
            if ev[1] == mid:
                break
        granted = ev[2][0]
        code = int(getattr(granted, 'value', granted))
        if code >= 0x80:
            raise PermissionError('subscription to %s refused (%#x)' % (topic, code))
        return code

    def publish(self, topic, payload, qos=1, response_topic=None, correlation=None, timeout=10):
        props = None
        if self.version == 5 and (response_topic is not None or correlation is not None):
            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=qos, properties=props)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError('the request was not acknowledged')

    def next_message(self, timeout):
        """The next message, or None after timeout seconds."""
        try:
            return self.messages.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return None

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


# ---------------------------------------------------------------------------------------------
# The contract's request and reply

class BootstrapError(Exception):
    """An error reply: code, message (for humans) and retry_after (whole seconds, or None)."""

    def __init__(self, reply):
        self.reply = reply
        self.code = reply.get('code')
        self.message = reply.get('message')
        self.retry_after = reply.get('retryAfter')
        super().__init__('%s: %s' % (self.code, self.message))


def reply_topic(device_id, template=REPLY_TEMPLATE, fmt='json'):
    """The device's reply topic; in CBOR, plus /cbor."""
    return template.replace('{deviceId}', device_id) + (CBOR_SUFFIX if fmt == 'cbor' else '')


def request_topic(fmt='json', topic=REQUEST_TOPIC):
    return topic + (CBOR_SUFFIX if fmt == 'cbor' else '')


def encode(body, fmt='json'):
    """A request dict as a payload: a JSON object, or a CBOR map (definite lengths, text keys)."""
    return cbor2.dumps(body) if fmt == 'cbor' else json.dumps(body)


def request_payload(device_id, product_key, product_secret, method='hmacsha256', random=None, send_product_key=False):
    """The signed request as a dict, and the random it carries."""
    random = new_random() if random is None else random
    body = {}
    if send_product_key:
        body['productKey'] = product_key
    body.update({'deviceId': device_id, 'random': random, 'signMethod': method,
                 'sign': sign(method, product_secret, device_id, product_key, random)})
    return body, random


def parse_reply(payload, fmt='json'):
    try:
        reply = cbor_decode(payload) if fmt == 'cbor' else json.loads(payload)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) and isinstance(reply.get('success'), bool) else None


def check_error(reply):
    """An error reply's shape as the contract gives it; returns a list of what is wrong."""
    wrong = []
    if not isinstance(reply.get('code'), str) or not reply['code']:
        wrong.append('no code')
    if not isinstance(reply.get('message'), str):
        wrong.append('no message')
    if 'retryAfter' in reply:
        ra = reply['retryAfter']
        if not isinstance(ra, int) or isinstance(ra, bool) or ra < 1:
            wrong.append('retryAfter is not a whole number of seconds >= 1')
    if 'sealed' in reply or 'data' in reply:
        wrong.append('an error reply carries a triple')
    return wrong


class Device:
    """A device of one product: asks for its triple as the contract says.

    sealed: True (reply_encryption on, the default with sign): a success reply must be sealed for
    this request, anything else is ignored; False: the broker sends the triple in the clear.
    """

    def __init__(self, host, port, product_key, product_secret, version=5, sealed=True,
                 request_topic=REQUEST_TOPIC, reply_template=REPLY_TEMPLATE, fmt='json'):
        self.host, self.port = host, port
        self.product_key, self.product_secret = product_key, product_secret
        self.version, self.sealed, self.fmt = version, sealed, fmt
        self.request_topic, self.reply_template = request_topic, reply_template
        self.log = []  # (code or 'ok', retryAfter) of every answer, for the caller's checks

    def connect(self, client_id):
        return Connection(self.host, self.port, client_id, self.version)

    def ask(self, conn, device_id, method='hmacsha256', random=None, response_topic=None,
            send_product_key=False, timeout=15, subscribe=True, qos=1, correlation=None, payload=None):
        """One request on conn (client id = device_id) and its answer: the triple, or
        BootstrapError. Ignores what is not the answer to this request (another correlation, a
        success that does not open with this random). Returns (triple, random, message).
        payload: the request as it is sent, for request_auth identity and none (no sign)."""
        mine = reply_topic(device_id, self.reply_template, self.fmt)
        listen = response_topic if (self.version == 5 and response_topic) else mine
        if subscribe:
            conn.subscribe(listen)
        if payload is None:
            body, random = request_payload(device_id, self.product_key, self.product_secret, method, random, send_product_key)
            payload = encode(body, self.fmt)
        # else: request_auth identity or none, the payload as given ({"deviceId":…} or the bare deviceId)
        if self.version == 5 and response_topic and correlation is None:
            correlation = os.urandom(16)
        conn.publish(request_topic(self.fmt, self.request_topic), payload, qos=qos, response_topic=response_topic if self.version == 5 else None,
                     correlation=correlation)
        deadline = time.monotonic() + timeout
        while True:
            m = conn.next_message(deadline - time.monotonic())
            if m is None:
                raise TimeoutError('no answer for %s within %ss' % (device_id, timeout))
            if m['topic'] != listen or m['retain']:
                continue
            if correlation is not None and m.get('correlation') != correlation:
                continue  # the answer to another request
            reply = parse_reply(m['payload'], self.fmt)
            if reply is None:
                continue
            if not reply['success']:
                self.log.append((reply.get('code'), reply.get('retryAfter')))
                raise BootstrapError(reply)
            try:
                if 'sealed' in reply:
                    triple = open_sealed(reply, self.product_secret, random, self.product_key, device_id, self.fmt)
                elif self.sealed:
                    continue  # in the clear while sealing is on: a forgery, rejected
                else:
                    triple = check_triple(reply.get('data'), self.product_key, device_id)
            except NotOurs:
                continue  # keep waiting for the genuine answer
            self.log.append(('ok', None))
            return triple, random, m

    def bootstrap(self, device_id, method='hmacsha256', response_topic=None, send_product_key=False,
                  max_tries=10, max_wait=60, timeout=15):
        """Connects under device_id, asks until it has the triple; follows retryAfter (each new
        try with a new random). Raises BootstrapError for an answer without retryAfter."""
        conn = self.connect(device_id)
        try:
            subscribed = False
            for tries in range(1, max_tries + 1):
                try:
                    triple, _, _ = self.ask(conn, device_id, method, response_topic=response_topic,
                                            send_product_key=send_product_key, timeout=timeout, subscribe=not subscribed)
                    return triple
                except BootstrapError as e:
                    if e.retry_after is None or tries == max_tries or e.retry_after > max_wait:
                        raise
                    time.sleep(e.retry_after)
                finally:
                    subscribed = True
        finally:
            conn.close()


def run_threads(fns):
    """Runs the callables at once; returns their results (or exceptions) in order."""
    results = [None] * len(fns)

    def run(i, fn):
        try:
            results[i] = fn()
        except Exception as e:  # handed back to the caller, who checks it
            results[i] = e
    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
