#!/usr/bin/env node
'use strict'
// Conformance cases driven by mqtt.js 5 (the Mini Program's MQTT library), over the broker's
// plain WebSocket listener and over TCP.
//
// usage: node mqttjs_cases.js HOST TCP_PORT WS_PORT
// Prints one JSON object: {"case": null (passed) | "why it failed", ...}.

const path = require('path')
const crypto = require('crypto')
const mqtt = require(path.join(__dirname, '..', 'miniprogram', 'node_modules', 'mqtt5'))

const [HOST, TCP, WS] = process.argv.slice(2)
const uid = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function connect (url, opts = {}) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
    c.messages = []
    c.on('message', (topic, payload, packet) => c.messages.push({ topic, payload, packet }))
    c.once('connect', (ack) => { c.connack = ack; resolve(c) })
    c.once('error', reject)
    setTimeout(() => reject(new Error('no CONNACK within 5 s')), 6000)
  })
}

const ws = (o) => connect(`ws://${HOST}:${WS}/mqtt`, o)
const tcp = (o) => connect(`mqtt://${HOST}:${TCP}`, o)

async function waitFor (c, n, ms = 3000) {
  const end = Date.now() + ms
  while (c.messages.length < n && Date.now() < end) await sleep(20)
  return c.messages.slice()
}

function expect (cond, why) { if (!cond) throw new Error(why) }
const close = (c) => new Promise((r) => c.end(false, {}, r))

const cases = {
  // QoS 0, 1, 2 round trips over WebSocket, MQTT 3.1.1 and 5.
  async ws_qos_311 () { await qosRoundTrip(4) },
  async ws_qos_5 () { await qosRoundTrip(5) },
  // MQTT 3.1 (protocol level 3, subprotocol mqttv3.1), which old Mini Program bundles speak.
  async ws_mqtt_31 () {
    const t = uid('js/v31')
    const c = await ws({ protocolId: 'MQIsdp', protocolVersion: 3, clientId: uid('v31').slice(0, 20) })
    await c.subscribeAsync(t, { qos: 1 })
    await c.publishAsync(t, 'old', { qos: 1 })
    const got = await waitFor(c, 1)
    await close(c)
    expect(got.length === 1 && got[0].payload.toString() === 'old', 'MQTT 3.1 round trip')
  },
  async ws_retained () {
    const t = uid('js/retain')
    const p = await ws()
    await p.publishAsync(t, 'kept', { qos: 1, retain: true })
    const s = await ws()
    await s.subscribeAsync(t, { qos: 1 })
    const got = await waitFor(s, 1)
    await p.publishAsync(t, '', { qos: 1, retain: true })
    await close(s); await close(p)
    expect(got.length === 1 && got[0].packet.retain, 'retained message over WebSocket: ' + JSON.stringify(got.map((m) => [m.topic, String(m.payload), m.packet.retain])))
  },
  async ws_will_when_the_socket_dies () {
    const t = uid('js/will')
    const w = await ws()
    await w.subscribeAsync(t, { qos: 1 })
    const d = await ws({ will: { topic: t, payload: Buffer.from('gone'), qos: 1, retain: false } })
    d.stream.destroy()
    const got = await waitFor(w, 1)
    await close(w); d.end(true)
    expect(got.length === 1 && got[0].payload.toString() === 'gone', 'no will after the WebSocket died')
  },
  async ws_user_properties_5 () {
    const t = uid('js/props')
    const s = await ws({ protocolVersion: 5 })
    await s.subscribeAsync(t, { qos: 1 })
    const p = await ws({ protocolVersion: 5 })
    await p.publishAsync(t, 'x', { qos: 1, properties: { userProperties: { k: 'v', list: ['a', 'b'] }, contentType: 'text/plain', responseTopic: t + '/r', correlationData: Buffer.from('c') } })
    const got = await waitFor(s, 1)
    await close(s); await close(p)
    const props = got[0] && got[0].packet.properties
    expect(props && props.userProperties && props.userProperties.k === 'v', 'user properties ' + JSON.stringify(props))
    expect(JSON.stringify(props.userProperties.list) === '["a","b"]', 'repeated user property ' + JSON.stringify(props.userProperties))
    expect(props.contentType === 'text/plain' && props.responseTopic === t + '/r', 'content type / response topic')
    expect(props.correlationData && props.correlationData.toString() === 'c', 'correlation data')
  },
  async tcp_persistent_session () {
    const id = uid('jsp')
    const t = uid('js/persist')
    let a = await tcp({ clientId: id, clean: false })
    await a.subscribeAsync(t, { qos: 1 })
    await close(a)
    const p = await tcp()
    await p.publishAsync(t, 'queued', { qos: 1 })
    await close(p)
    a = await tcp({ clientId: id, clean: false })
    const present = a.connack.sessionPresent
    const got = await waitFor(a, 1)
    await close(a)
    const c = await tcp({ clientId: id, clean: true })
    await close(c)
    expect(present && got.length === 1 && got[0].payload.toString() === 'queued', `session present ${present}, got ${got.length}`)
  },
  async tcp_keepalive_zero () {
    const t = uid('js/ka0')
    const c = await tcp({ keepalive: 0 })
    await sleep(3000)
    await c.subscribeAsync(t, { qos: 1 })
    await c.publishAsync(t, 'idle', { qos: 1 })
    const got = await waitFor(c, 1)
    await close(c)
    expect(got.length === 1, 'keep alive 0: no round trip after 3 s idle')
  }
}

async function qosRoundTrip (protocolVersion) {
  const t = uid('js/qos')
  const c = await ws({ protocolVersion })
  await c.subscribeAsync(t, { qos: 2 })
  for (const qos of [0, 1, 2]) await c.publishAsync(t, `q${qos}`, { qos })
  const got = await waitFor(c, 3)
  await close(c)
  const seen = got.map((m) => `${m.payload}:${m.packet.qos}`).sort()
  expect(JSON.stringify(seen) === '["q0:0","q1:1","q2:2"]', 'delivered ' + JSON.stringify(seen))
}

async function main () {
  const results = {}
  await Promise.all(Object.entries(cases).map(async ([name, fn]) => {
    try {
      await Promise.race([fn(), sleep(30000).then(() => { throw new Error('no result within 30 s') })])
      results['mqttjs_' + name] = null
    } catch (e) {
      results['mqttjs_' + name] = String(e && e.message ? e.message : e)
    }
  }))
  process.stdout.write(JSON.stringify(results) + '\n')
  process.exit(0)
}

main()
