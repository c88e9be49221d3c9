/**
 * One fleet across gateways: this broker's mailboxes and devices shared
 * through an MQTT broker, and a replica of every other gateway's, so that a
 * board here reads a board there (docs/PROTOCOL.md, sharing). Replies never
 * wait on MQTT: remote mailboxes are written into the local store as they
 * come, and served from there. No MQTT client here either: the transport
 * (Node-RED's mqtt-broker node, MQTT.js in the gateway, or a test double) is
 * given. Topics and their payloads: topics.ts; Home Assistant: discovery.ts.
 *
 * A broker that never listens and shares only what flows write is how Node-RED
 * attaches to a fleet served by gateways elsewhere (tcpmq-broker mode `fleet`).
 *
 * Events: 'news' (a remote device's news), 'raw' (a remote plain-text line,
 * with `followRaw`), 'online' / 'offline' (remote devices), 'state'
 * (connected or not), 'warning'.
 */

import type { ConnectionInfo, ShareHook, TcpmqBroker } from '../broker/broker';
import { SafeEmitter, describe } from '../events/safe-emitter';
import type { DeviceId } from '../protocol/request';
import { describeDevice, type DeviceList } from '../settings/device-list';
import type { DeviceRecord, Devices } from '../store/devices';
import type { Mailbox } from '../store/mailboxes';
import { Publisher } from './publisher';
import { Replica, type ReplicaEvents } from './replica';
import { fleetTopics, idOfLevel, levelsAfter, type FleetTopics, type SharedCommand } from './topics';

export { idOfLevel, topicLevel } from './topics';
export type { SharedDevice, SharedMailbox } from './topics';
export type { RemoteDevice, RemoteNews } from './replica';

/** What carries the fleet's messages: an MQTT client's publish and subscribe. */
export interface FleetTransport {
  publish(topic: string, payload: string, retain: boolean): void;
  subscribe(topic: string, onMessage: (topic: string, payload: Buffer) => void): void;
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
  /** Take in the plain-text lines of every gateway ('raw' events): a Node-RED attached in fleet mode. */
  followRaw?: boolean;
  /** Names, units and kinds of this gateway's boards (the device list). */
  devices?: DeviceList;
  /**
   * Publish this gateway's retained state `<prefix>/gateway/<name>` (online, version, counters) on
   * connecting and every 30 s; `model` names the host in Home Assistant (`tcpmq-gateway`, `Node-RED`).
   */
  announce?: { model: string; startedAt: number; counters?: () => Record<string, number> };
}

export interface FleetEvents extends ReplicaEvents {
  state: { connected: boolean };
  warning: string;
}

export class Fleet extends SafeEmitter<FleetEvents> implements ShareHook {
  readonly topics: FleetTopics;
  private readonly replica: Replica;
  private readonly publisher: Publisher;
  private transport: FleetTransport | undefined;
  private subscribed: string[] = [];
  private isConnected = false;
  private detachRaw: (() => void) | undefined;

  constructor(
    private readonly broker: TcpmqBroker,
    readonly options: FleetOptions,
  ) {
    super();
    this.topics = fleetTopics(options.prefix);
    // The replica's events are the fleet's.
    this.replica = new Replica(broker, options, (event, arg) => this.safeEmit(event, arg as FleetEvents[typeof event]));
    this.publisher = new Publisher(broker, options, this.topics, (action) => this.safely(action));
  }

  /** The devices of other gateways: online while their news is fresh. */
  get remote(): Devices {
    return this.replica.remote;
  }

  /** Messages published and taken in, for the benchmark and the sidebar. */
  get counters(): { published: number; received: number } {
    return { published: this.publisher.published, received: this.replica.received };
  }

  get connected(): boolean {
    return this.isConnected;
  }

  get gateway(): string {
    return this.options.gateway;
  }

  /** The gateway a device lives on (this one, if it is not another's). */
  gatewayFor(id: DeviceId): string {
    return this.replica.gatewayOf(id) ?? this.options.gateway;
  }

  /** Whether another gateway's device or mailbox is known under `id`. */
  isRemote(id: DeviceId): boolean {
    return this.replica.gatewayOf(id) !== undefined;
  }

  /** The name and unit of board `id`: this gateway's device list, or what the board's own gateway says. */
  describe(id: DeviceId): { name?: string; unit?: string } {
    return this.isRemote(id) ? this.replica.nameOf(id) : describeDevice(this.options.devices, id);
  }

  /** A new device list: boards listed otherwise are announced again to Home Assistant, or removed. */
  setDevices(devices: DeviceList | undefined): void {
    const before = this.options.devices;
    this.options.devices = devices;
    this.publisher.devicesChanged(before, devices);
  }

  /** Starts sharing over `transport`: subscribes, and hears this broker's changes. */
  attach(transport: FleetTransport): void {
    this.detach();
    this.transport = transport;
    const { filters, command } = this.topics;
    const { replica } = this;
    const own = this.options.gateway;
    const id = (topic: string, levels: number, act: (id: DeviceId) => void) => {
      const rest = levelsAfter(this.options.prefix, topic);
      if (rest?.length === levels) act(idOfLevel(rest[1]));
    };
    const routes: [string, (topic: string, payload: Buffer) => void][] = [
      [filters.mailboxes, (topic, payload) => id(topic, 2, (of) => replica.mailbox(of, payload))],
      [filters.sets, (topic, payload) => id(topic, 3, (of) => replica.set(of, payload))],
      [filters.devices, (topic, payload) => id(topic, 2, (of) => replica.device(of, payload))],
      [filters.gateways, (topic, payload) => id(topic, 2, (of) => replica.gateway(of, payload))],
      [command(own, 'send'), (_topic, payload) => replica.command('send', payload)],
      [command(own, 'close'), (_topic, payload) => replica.command('close', payload)],
    ];
    if (this.options.followRaw)
      routes.push([filters.raw, (topic, payload) => id(topic, 2, () => replica.raw(payload))]);
    for (const [filter, route] of routes) {
      transport.subscribe(filter, (topic, payload) => this.safely(() => route(topic, payload)));
      this.subscribed.push(filter);
    }
    this.broker.setShare(this);
    this.detachRaw = this.broker.listen({ raw: (event) => this.publisher.raw(event) });
    this.remote.startSweeping();
  }

  /** Stops sharing: no more publishes or subscriptions; the replica stays (a deploy attaches again). */
  detach(): void {
    const transport = this.transport;
    this.transport = undefined;
    this.publisher.stop();
    this.remote.stopSweeping();
    this.broker.setShare(undefined);
    this.detachRaw?.();
    this.detachRaw = undefined;
    if (!transport) return;
    for (const topic of this.subscribed) transport.unsubscribe(topic);
    this.subscribed = [];
    this.setConnected(false);
  }

  /**
   * The transport is connected (again): this gateway publishes its current
   * state; the retained state of the others comes in through the subscriptions.
   */
  setConnected(connected: boolean): void {
    if (connected === this.isConnected) return;
    this.isConnected = connected;
    if (connected && this.transport) this.publisher.start(this.transport);
    else this.publisher.stop();
    this.safeEmit('state', { connected });
  }

  /** Writes to (or closes) connections on the gateway `gateway`, through its command topic. */
  command(gateway: string, command: 'send' | 'close', target: SharedCommand): void {
    this.publisher.command(gateway, command, target);
  }

  // ---- this broker's changes (ShareHook) -------------------------------------

  written(id: DeviceId, mailbox: Mailbox | undefined, want?: DeviceId, connection?: ConnectionInfo): void {
    if (mailbox?.gateway !== undefined) return; // taken in from the fleet: never sent back
    this.replica.forget(id);
    this.publisher.mailbox(id, want, connection);
  }

  device(record: DeviceRecord): void {
    this.publisher.device(record.id);
  }

  evicted(id: DeviceId): void {
    this.publisher.evicted(id);
  }

  /** A bad message from the MQTT broker is a warning, never an exception in its client. */
  private safely(action: () => void): void {
    try {
      action();
    } catch (err) {
      this.warn(`sharing: ${describe(err)}`);
    }
  }
}
