#!/usr/bin/python3
"""Bytes on the wire per bootstrap, JSON against CBOR, for the same device.

  bench/wire_bytes.py HOST PORT PRODUCT_KEY PRODUCT_SECRET_FILE DEVICE_ID [3|5]

Against a running broker with the plugin (request_auth sign, sealed replies), the independent
client of tests/conformance/ bootstraps DEVICE_ID in JSON, then in CBOR (the second answer is
the same existing device's triple, so both replies carry the same values), then sends one
request with a wrong sign in each format (unauthorized). Each runs on a connection of its own
through a relay here that counts every TCP byte both ways. Prints one JSON object per line:
format, case, request and reply payload bytes, and the connection's bytes up and down (CONNECT,
SUBSCRIBE, PUBLISH, their acknowledgements, DISCONNECT). tests/integration/cbor.test.js runs it;
docs/contract.md ("CBOR") has its numbers. Prints no secret.
"""

import json
import os
import socket
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'conformance'))
import bootstrap_client as bc  # noqa: E402


class Relay:
    """A TCP relay to (host, port) that counts the bytes of each connection, both ways."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.counts = []  # [up, down] per connection, in order
        self.done = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            count = [0, 0]
            self.counts.append(count)
            finished = (threading.Event(), threading.Event())
            self.done.append(finished)
            pumps = [threading.Thread(target=self._pump, args=(down, up, count, 0, finished[0])),
                     threading.Thread(target=self._pump, args=(up, down, count, 1, finished[1]))]
            for t in pumps:
                t.start()

    @staticmethod
    def _pump(src, dst, count, i, finished):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                count[i] += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            finished.set()

    def last(self):
        for finished in self.done[-1]:
            finished.wait(5)
        return self.counts[-1]


def measure(relay, version, pk, secret, device_id, fmt, good):
    conn = bc.Connection('127.0.0.1', relay.port, device_id, version)
    try:
        body, random = bc.request_payload(device_id, pk, secret if good else secret + 'x')
        payload = bc.encode(body, fmt)
        listen = bc.reply_topic(device_id, fmt=fmt)
        conn.subscribe(listen)
        conn.publish(bc.request_topic(fmt), payload)
        m = conn.next_message(15)
        if m is None or m['topic'] != listen:
            raise RuntimeError('%s: no answer on %s' % (fmt, listen))
        reply = bc.parse_reply(m['payload'], fmt)
        if good:
            bc.open_sealed(reply, secret, random, pk, device_id, fmt)  # raises unless it opens
        elif reply.get('code') != 'unauthorized':
            raise RuntimeError('%s: expected unauthorized, got %s' % (fmt, reply.get('code')))
    finally:
        conn.close()
    up, down = relay.last()
    return {'format': fmt, 'case': 'sealed triple' if good else 'error unauthorized', 'mqtt': '5' if version == 5 else '3.1.1',
            'request': len(payload), 'reply': len(m['payload']), 'tcpUp': up, 'tcpDown': down}


def main():
    if len(sys.argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, pk, secret_file, device_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    version = 5 if len(sys.argv) == 7 and sys.argv[6] == '5' else 4
    with open(secret_file, encoding='utf-8') as f:
        secret = f.readline().rstrip('\n')
    relay = Relay(host, port)
    for good in (True, False):
        for fmt in bc.FORMATS:
            print(json.dumps(measure(relay, version, pk, secret, device_id, fmt, good)), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
