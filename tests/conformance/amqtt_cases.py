#!/usr/bin/env python3
"""Conformance cases driven by amqtt, an asyncio MQTT client written by others (the kind of
client that crashed the embedded broker before: persistent session, a will, keep alive 9).

usage: amqtt_cases.py HOST PORT
Prints one JSON object on stdout: {"case": null (passed) | "why it failed", ...}.
"""
import asyncio
import json
import os
import random
import subprocess
import sys

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1

HOST, PORT = sys.argv[1], int(sys.argv[2])
URL = "mqtt://%s:%d/" % (HOST, PORT)


def uid(prefix):
    return "%s-%08x" % (prefix, random.getrandbits(32))


async def client(cid, clean=True, will=None):
    config = {"auto_reconnect": False}
    if will:
        config["will"] = {"topic": will[0], "message": will[1], "qos": 1, "retain": False}
    c = MQTTClient(client_id=cid, config=config)
    await c.connect(URL, cleansession=clean)
    return c


async def expect_message(c, secs=5):
    m = await asyncio.wait_for(c.deliver_message(), secs)
    return m.publish_packet.variable_header.topic_name, bytes(m.publish_packet.payload.data)


async def persistent_session_with_a_will():
    cid, topic = uid("amqtt"), uid("amqtt/t")
    a = await client(cid, clean=False, will=(topic + "/will", "gone"))
    await a.subscribe([(topic, QOS_1)])
    await a.disconnect()
    p = await client(uid("pub"))
    await p.publish(topic, b"queued", qos=QOS_1)
    await p.disconnect()
    a = await client(cid, clean=False)
    got = await expect_message(a)
    await a.disconnect()
    assert got == (topic, b"queued"), got


VANISH = """
import asyncio, os, sys
from amqtt.client import MQTTClient
async def main():
    c = MQTTClient(client_id=sys.argv[2], config={"auto_reconnect": False,
        "will": {"topic": sys.argv[3], "message": "gone", "qos": 1, "retain": False}})
    await c.connect(sys.argv[1], cleansession=False)
    await c.subscribe([(sys.argv[3] + "/in", 1)])
    os._exit(0)  # the process dies: no DISCONNECT
asyncio.run(main())
"""


async def vanishing_client_reused_id():
    """The same client id dies (no DISCONNECT) and comes back several times; its will is
    published; then it and a fresh client still connect and get messages."""
    cid, topic = uid("vanish"), uid("amqtt/will")
    w = await client(uid("watch"))
    await w.subscribe([(topic, QOS_1)])
    for _ in range(3):
        subprocess.run([sys.executable, "-c", VANISH, URL, cid, topic], timeout=20, check=True)
    got = await expect_message(w)
    assert got == (topic, b"gone"), got
    a = await client(cid, clean=True)
    await a.subscribe([(topic + "/in", QOS_1)])
    await a.publish(topic + "/in", b"back", qos=QOS_1)
    got = await expect_message(a)
    await a.disconnect()
    await w.disconnect()
    assert got == (topic + "/in", b"back"), got


async def keepalive_9_idle():
    """amqtt's default keep alive (10 - 1 s of ping delay): a quiet client stays connected."""
    topic = uid("amqtt/idle")
    c = await client(uid("idle"))
    await asyncio.sleep(12)
    await c.subscribe([(topic, QOS_1)])
    await c.publish(topic, b"still here", qos=QOS_1)
    got = await expect_message(c)
    await c.disconnect()
    assert got == (topic, b"still here"), got


CASES = {
    "amqtt_persistent_session_with_a_will": persistent_session_with_a_will,
    "amqtt_vanishing_client_reused_id": vanishing_client_reused_id,
    "amqtt_keepalive_9_idle": keepalive_9_idle,
}


async def main():
    results = {}

    async def run(name, fn):
        try:
            await asyncio.wait_for(fn(), 60)
            results[name] = None
        except BaseException as e:  # noqa: BLE001 - every failure is a result
            results[name] = "%s: %s" % (type(e).__name__, e)

    await asyncio.gather(*(run(n, f) for n, f in CASES.items()))
    print(json.dumps(results))
    sys.stdout.flush()
    os._exit(0)


asyncio.run(main())
