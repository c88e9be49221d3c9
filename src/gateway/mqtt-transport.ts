/**
 * The gateway's MQTT connection (MQTT.js), as the fleet's transport: connects,
 * reconnects by itself, leaves a retained will saying the gateway is gone, and
 * routes each message to the subscription whose filter it matches.
 */

import mqtt, { type MqttClient } from 'mqtt';
import type { FleetTransport } from '../fleet/options';

export interface MqttLink extends FleetTransport {
  readonly client: MqttClient;
  end(): Promise<void>;
}

/** Whether `topic` matches the subscription `filter` (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** Connects to `url`; `will` (if any) is published (retained) by the MQTT broker if this process goes without a word. */
export function connectMqtt(url: string, clientId: string, will?: { topic: string; payload: string }): MqttLink {
  const client = mqtt.connect(url, {
    clientId,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 10_000,
    will: will && { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true },
  });
  // Each publish goes out at once: Nagle's algorithm would hold a report back for tens of milliseconds.
  client.on('connect', () => (client.stream as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true));
  const routes = new Map<string, (topic: string, payload: Buffer, retained?: boolean) => void>();
  client.on('message', (topic, payload, packet) => {
    for (const [filter, onMessage] of routes) if (topicMatches(filter, topic)) onMessage(topic, payload, packet.retain);
  });
  return {
    client,
    publish(topic, payload, retain) {
      client.publish(topic, payload, { qos: 1, retain });
    },
    subscribe(filter, onMessage) {
      routes.set(filter, onMessage);
      client.subscribe(filter, { qos: 1 });
    },
    unsubscribe(filter) {
      routes.delete(filter);
      client.unsubscribe(filter);
    },
    end: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
  };
}
