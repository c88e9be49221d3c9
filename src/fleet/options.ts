/** How a fleet member is set up (fleet.ts), and what carries its messages: read by the fleet, its publisher and its replica. */

import type { DeviceList } from '../settings/device-list';

/** What carries the fleet's messages: an MQTT client's publish and subscribe. */
export interface FleetTransport {
  publish(topic: string, payload: string, retain: boolean): void;
  /** `retained`: the MQTT broker held the message from before this subscription (its retain flag). */
  subscribe(topic: string, onMessage: (topic: string, payload: Buffer, retained?: boolean) => void): void;
  unsubscribe(topic: string): void;
}

export interface FleetOptions {
  /** The topic prefix (`tcpmq`). */
  prefix: string;
  /** This gateway's name, in every message it publishes. */
  gateway: string;
  /** Publish Home Assistant MQTT discovery for each device of this gateway. */
  haDiscovery: boolean;
  /**
   * The least time between two publishes of one id: a device reporting faster
   * is coalesced (the latest gets out). 0: every report, as soon as it is answered.
   */
  minIntervalMs: number;
  /**
   * A member with no boards (Node-RED in fleet mode): it owns no mailbox (its writes go to their owners
   * through `/set`) and takes in the plain-text lines of every gateway ('raw' events).
   */
  attached?: boolean;
  /** Names, units and kinds of this gateway's boards (the device list). */
  devices?: DeviceList;
  /**
   * Publish this gateway's retained state `<prefix>/gateway/<name>` (online, version, counters) on
   * connecting and every 30 s; `model` names the host in Home Assistant (`tcpmq-gateway`, `Node-RED`).
   */
  announce?: { model: string; startedAt: number; counters?: () => Record<string, number> };
}
