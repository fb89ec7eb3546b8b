#!/usr/bin/env python3
"""Conformance cases driven by Eclipse paho-mqtt (Python), a client library written by others.

usage: paho_cases.py HOST PORT
Prints one JSON object on stdout: {"case": null (passed) | "why it failed", ...}.
Every case uses its own client ids and topics, so one broker serves them all in turn.
"""
import json
import random
import socket
import sys
import threading
import time
import traceback

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST, PORT = sys.argv[1], int(sys.argv[2])
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5


def uid(prefix):
    return "%s-%08x" % (prefix, random.getrandbits(32))


class Client:
    """A paho client with its received messages, run on paho's own network thread."""

    def __init__(self, cid, version, clean=True, expiry=None, keepalive=30, will=None, props=None):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                             clean_session=clean if version == V311 else None)
        self.version = version
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.flags = None
        self.reason = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_disconnect = self._on_disconnect
        if will:
            self.c.will_set(*will[:4], properties=will[4] if len(will) > 4 else None)
        kwargs = dict(keepalive=keepalive)
        if version == V5:
            kwargs["clean_start"] = clean
            p = props or Properties(PacketTypes.CONNECT)
            if expiry is not None:
                p.SessionExpiryInterval = expiry
            kwargs["properties"] = p
        self.c.connect(HOST, PORT, **kwargs)
        self.c.loop_start()
        if not self.connected.wait(5):
            raise AssertionError("no CONNACK for %s" % cid)

    def _on_connect(self, c, userdata, flags, reason, props):
        self.flags = flags
        self.reason = reason
        self.connected.set()

    def _on_message(self, c, userdata, msg):
        with self.lock:
            self.messages.append(msg)

    def _on_disconnect(self, c, userdata, flags, reason, props):
        self.reason = reason
        self.disconnected.set()

    def sub(self, topic, qos=1, **opts):
        self.subscribed.clear()
        if self.version == V5:
            self.c.subscribe(topic, options=mqtt.SubscribeOptions(qos=qos, **opts))
        else:
            self.c.subscribe(topic, qos)
        if not self.subscribed.wait(5):
            raise AssertionError("no SUBACK for " + topic)

    def pub(self, topic, payload, qos=1, retain=False, props=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(5)
        if not info.is_published():
            raise AssertionError("publish to %s not acknowledged" % topic)

    def wait(self, n, secs=3.0):
        end = time.time() + secs
        while time.time() < end:
            with self.lock:
                if len(self.messages) >= n:
                    break
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)

    def settle(self, secs):
        time.sleep(secs)
        with self.lock:
            return list(self.messages)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def vanish(self):
        """Ends the connection without DISCONNECT, as a crashed device does."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def payloads(msgs):
    return [m.payload.decode(errors="replace") for m in msgs]


# ---------------------------------------------------------------------- cases --

def keepalive_zero(v):
    t = uid("paho/ka0")
    c = Client(uid("ka0"), v, keepalive=0)
    time.sleep(3)
    c.sub(t)
    c.pub(t, "alive")
    expect(payloads(c.wait(1)) == ["alive"], "no round trip after 3 s idle with keep alive 0")
    c.close()


def persistent_session(v):
    cid, t = uid("persist"), uid("paho/persist")
    a = Client(cid, v, clean=False, expiry=300)
    a.sub(t, qos=2)
    a.close()
    p = Client(uid("pub"), v)
    p.pub(t, "one", qos=1)
    p.pub(t, "two", qos=2)
    p.close()
    a = Client(cid, v, clean=False, expiry=300)
    expect(a.flags.session_present, "session not present on return")
    got = sorted(payloads(a.wait(2)))
    a.close()
    Client(cid, v, clean=True, expiry=0).close()
    expect(got == ["one", "two"], "queued while offline: %s" % got)


def will_on_vanish(v):
    t = uid("paho/will")
    w = Client(uid("watch"), v)
    w.sub(t)
    d = Client(uid("dying"), v, will=(t, "gone", 1, False))
    d.vanish()
    expect(payloads(w.wait(1)) == ["gone"], "no will after the connection vanished")
    w.close()


def no_will_after_disconnect(v):
    t = uid("paho/nowill")
    w = Client(uid("watch"), v)
    w.sub(t)
    d = Client(uid("polite"), v, will=(t, "gone", 1, False))
    d.close()
    got = w.settle(1.5)
    w.close()
    expect(got == [], "will sent after DISCONNECT")


def retained(v):
    t = uid("paho/retain")
    p = Client(uid("pub"), v)
    p.pub(t, "r1", retain=True)
    p.pub(t, "r2", retain=True)
    s = Client(uid("sub"), v)
    s.sub(t)
    got = s.wait(1)
    expect([(m.payload, m.retain) for m in got] == [(b"r2", True)], "retained: %s" % got)
    s.close()
    p.pub(t, "", retain=True)
    s = Client(uid("sub"), v)
    s.sub(t)
    got = s.settle(1.0)
    s.close()
    p.close()
    expect(got == [], "retained after clearing: %s" % payloads(got))


def qos_matrix(v):
    base = uid("paho/qos")
    s = Client(uid("sub"), v)
    for q in range(3):
        s.sub("%s/s%d" % (base, q), qos=q)
    p = Client(uid("pub"), v)
    for sq in range(3):
        for pq in range(3):
            p.pub("%s/s%d" % (base, sq), "p%d" % pq, qos=pq)
    got = s.wait(9, 5)
    s.close()
    p.close()
    seen = {(m.topic.rsplit("/s", 1)[1], m.payload.decode()): m.qos for m in got}
    for sq in range(3):
        for pq in range(3):
            q = seen.get((str(sq), "p%d" % pq))
            expect(q == min(sq, pq), "sub %d pub %d: QoS %s" % (sq, pq, q))


def wildcards_and_dollar(v):
    base = uid("paho/wild")
    s = Client(uid("sub"), v)
    s.sub(base + "/+/c")
    s.sub("$paho-" + base.split("/")[1] + "/#")
    p = Client(uid("pub"), v)
    for t in [base + "/a/c", base + "/a/d", base + "/b/c", "$paho-" + base.split("/")[1] + "/x"]:
        p.pub(t, "w")
    got = sorted(m.topic for m in s.wait(3, 2))
    allsub = Client(uid("all"), v)
    allsub.sub("#", qos=0)
    p.pub("$paho-" + base.split("/")[1] + "/y", "hidden")
    dollars = [m.topic for m in allsub.settle(0.5) if m.topic.startswith("$")]
    for c in (s, p, allsub):
        c.close()
    want = sorted([base + "/a/c", base + "/b/c", "$paho-" + base.split("/")[1] + "/x"])
    expect(got == want, "matched %s" % got)
    expect(dollars == [], "# matched %s" % dollars)


def unsubscribe(v):
    t = uid("paho/unsub")
    s = Client(uid("sub"), v)
    s.sub(t)
    done = threading.Event()
    s.c.on_unsubscribe = lambda *a: done.set()
    s.c.unsubscribe(t)
    expect(done.wait(5), "no UNSUBACK")
    p = Client(uid("pub"), v)
    p.pub(t, "late")
    got = s.settle(1.0)
    s.close()
    p.close()
    expect(got == [], "delivered after UNSUBSCRIBE")


def take_over(v):
    cid, t = uid("dup"), uid("paho/dup")
    a = Client(cid, v)
    b = Client(cid, v)
    expect(a.disconnected.wait(3), "the first connection stayed open")
    b.sub(t)
    b.pub(t, "b")
    got = payloads(b.wait(1))
    b.close()
    a.c.loop_stop()
    expect(got == ["b"], "the new connection did not work")


def large_payload(v):
    t = uid("paho/big")
    s = Client(uid("sub"), v)
    s.sub(t)
    body = bytes(i % 251 for i in range(1024 * 1024))
    p = Client(uid("pub"), v)
    p.pub(t, body)
    got = s.wait(1, 10)
    s.close()
    p.close()
    expect(len(got) == 1 and got[0].payload == body, "1 MiB payload not delivered whole")


def v5_properties(v):
    t = uid("paho/props")
    s = Client(uid("sub"), v)
    s.sub(t)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
    props.ContentType = "application/json"
    props.ResponseTopic = t + "/reply"
    props.CorrelationData = b"\x01\x02"
    props.PayloadFormatIndicator = 1
    p = Client(uid("pub"), v)
    p.pub(t, '{"x":1}', props=props)
    got = s.wait(1)
    s.close()
    p.close()
    expect(len(got) == 1, "not delivered")
    g = got[0].properties
    expect(getattr(g, "UserProperty", None) == props.UserProperty, "user properties %s" % getattr(g, "UserProperty", None))
    expect(getattr(g, "ContentType", None) == "application/json", "content type")
    expect(getattr(g, "ResponseTopic", None) == t + "/reply", "response topic")
    expect(getattr(g, "CorrelationData", None) == b"\x01\x02", "correlation data")


def v5_will_delay(v):
    t = uid("paho/wdelay")
    w = Client(uid("watch"), v)
    w.sub(t)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    d = Client(uid("dying"), v, expiry=10, will=(t, "late", 1, False, wp))
    d.vanish()
    start = time.time()
    got = w.wait(1, 6)
    after = time.time() - start
    w.close()
    expect(payloads(got) == ["late"], "no delayed will")
    expect(after >= 1.5, "will after %.1f s, delay 2 s" % after)


def v5_subscription_ids(v):
    base = uid("paho/subid")
    s = Client(uid("sub"), v)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 5
    s.subscribed.clear()
    s.c.subscribe(base + "/#", options=mqtt.SubscribeOptions(qos=1), properties=sp)
    expect(s.subscribed.wait(5), "no SUBACK")
    p = Client(uid("pub"), v)
    p.pub(base + "/a", "x")
    got = s.wait(1)
    s.close()
    p.close()
    ids = getattr(got[0].properties, "SubscriptionIdentifier", None) if got else None
    expect(ids == [5], "subscription identifiers %s" % ids)


CASES = [
    ("keepalive_zero", keepalive_zero, [V311, V5]),
    ("persistent_session", persistent_session, [V311, V5]),
    ("will_on_vanish", will_on_vanish, [V311, V5]),
    ("no_will_after_disconnect", no_will_after_disconnect, [V311, V5]),
    ("retained", retained, [V311, V5]),
    ("qos_matrix", qos_matrix, [V311, V5]),
    ("wildcards_and_dollar", wildcards_and_dollar, [V311, V5]),
    ("unsubscribe", unsubscribe, [V311, V5]),
    ("take_over", take_over, [V311, V5]),
    ("large_payload", large_payload, [V311, V5]),
    ("properties", v5_properties, [V5]),
    ("will_delay", v5_will_delay, [V5]),
    ("subscription_ids", v5_subscription_ids, [V5]),
]


def main():
    results = {}
    jobs = []
    for name, fn, versions in CASES:
        for v in versions:
            key = "paho_%s_%s" % ("311" if v == V311 else "5", name)

            def run(key=key, fn=fn, v=v):
                try:
                    fn(v)
                    results[key] = None
                except Exception as e:  # noqa: BLE001 - every failure is a result
                    results[key] = "%s: %s" % (type(e).__name__, e) or traceback.format_exc()

            jobs.append(threading.Thread(target=run, daemon=True))
    # A few at a time: each case sleeps more than it works.
    for i in range(0, len(jobs), 8):
        batch = jobs[i:i + 8]
        for j in batch:
            j.start()
        for j in batch:
            j.join(60)
    for name, _, versions in CASES:
        for v in versions:
            key = "paho_%s_%s" % ("311" if v == V311 else "5", name)
            results.setdefault(key, "no result within 60 s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
