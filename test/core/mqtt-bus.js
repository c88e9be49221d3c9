'use strict';
// An MQTT broker in memory for the fleet's tests: retained messages, wildcards,
// delivery on the next turn, retained ones flagged as such (the real one, mosquitto, is in test/e2e/).
const { topicMatches: matches } = require('../../dist/gateway/mqtt-transport');
const { waitFor } = require('../../tools/wait');

/** An MQTT broker in memory: retained messages, wildcards, delivery on the next turn. Counts what is published. */
class Bus {
  constructor() {
    this.retained = new Map();
    this.subscriptions = [];
    this.published = [];
    this.up = true;
    /** Deliveries queued and not yet made. */
    this.pending = 0;
  }

  /** Delivers on the next turn, counted in `pending` until made. */
  deliver(onMessage, ...args) {
    this.pending++;
    setImmediate(() => {
      this.pending--;
      onMessage(...args);
    });
  }

  /**
   * Resolves once every message published so far has been delivered and handled, and what handling it
   * published too: whatever a subscriber does at a message has been done (its timers aside).
   */
  idle() {
    return waitFor(
      () => this.pending === 0,
      () => `the bus to deliver its ${this.pending} queued messages`,
    );
  }

  transport() {
    const bus = this;
    const own = [];
    return {
      publish(topic, payload, retain) {
        if (!bus.up) return;
        bus.published.push({ topic, payload, retain });
        if (retain) {
          if (payload === '') bus.retained.delete(topic);
          else bus.retained.set(topic, payload);
        }
        for (const { filter, onMessage } of bus.subscriptions)
          if (matches(filter, topic)) bus.deliver(onMessage, topic, Buffer.from(payload));
      },
      subscribe(filter, onMessage) {
        const subscription = { filter, onMessage };
        own.push(subscription);
        bus.subscriptions.push(subscription);
        for (const [topic, payload] of bus.retained)
          if (matches(filter, topic)) bus.deliver(onMessage, topic, Buffer.from(payload), true);
      },
      unsubscribe(filter) {
        bus.subscriptions = bus.subscriptions.filter((s) => !(own.includes(s) && s.filter === filter));
      },
    };
  }

  /** Anyone else's publish (mosquitto_pub). */
  publish(topic, payload, retain = false) {
    this.transport().publish(topic, payload, retain);
  }
}

module.exports = { Bus, matches };
