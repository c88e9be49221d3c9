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

import { randomUUID } from 'node:crypto';
import type { ShareHook, TcpmqBroker } from '../broker';
import type { ConnectionInfo } from '../protocol/connection-info';
import { limitedWarnings } from '../events/rate-limit';
import { SafeEmitter, errorText } from '../events/safe-emitter';
import { printable } from '../protocol/printable';
import { encodeReply } from '../protocol/reply';
import { mailboxIdOf, type DeviceId } from '../protocol/request';
import { describeDevice, type DeviceList } from '../settings/device-list';
import type { DeviceRecord, Devices } from '../store/devices';
import type { Mailbox } from '../store/mailboxes';
import type { FleetOptions, FleetTransport } from './options';
import { Ownership } from './ownership';
import { Publisher } from './publisher';
import { Replica, type ReplicaEvents } from './replica';
import { fleetTopics, idOfLevel, levelsAfter, type FleetTopics, type SharedCommand } from './topics';

/** How long a (re)connecting member waits for the retained state at most, and how often it asks again. */
const SYNC_WITHIN_MS = 5000;
const SYNC_RETRY_MS = 250;

export interface FleetEvents extends ReplicaEvents {
  state: { connected: boolean };
  warning: string;
}

export class Fleet extends SafeEmitter<FleetEvents> implements ShareHook {
  readonly topics: FleetTopics;
  private readonly replica: Replica;
  private readonly publisher: Publisher;
  private readonly ownership: Ownership;
  private transport: FleetTransport | undefined;
  private subscribed: string[] = [];
  private isConnected = false;
  private detachRaw: (() => void) | undefined;
  /** The marker this member waits for after (re)connecting, and how long it waits at most. */
  private syncMarker: string | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  /** Writes for ids owned elsewhere, made while not in step with the fleet: sent once it is. */
  private readonly pendingSets = new Map<DeviceId, { payload: string; ttlSeconds: number }>();
  private readonly refused = limitedWarnings(
    (text: string) => this.warn(text),
    (count) => this.warn(`sharing: ${count} more refusals in the last minute were not logged`),
  );

  constructor(
    private readonly broker: TcpmqBroker,
    readonly options: FleetOptions,
  ) {
    super();
    this.topics = fleetTopics(options.prefix);
    this.ownership = new Ownership(options.gateway, options.attached === true, broker.mailboxes);
    // The replica's events are the fleet's.
    this.replica = new Replica(
      broker,
      options,
      this.ownership,
      (event, arg) => this.safeEmit(event, arg as FleetEvents[typeof event]),
      (topic, reason) => this.refused(`sharing: ${printable(topic)} refused: ${reason}`),
    );
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
  deviceGateway(id: DeviceId): string {
    return this.replica.remoteGateway(id) ?? this.options.gateway;
  }

  /** Whether another gateway's device or mailbox is known under `id`. */
  isRemote(id: DeviceId): boolean {
    return this.replica.remoteGateway(id) !== undefined;
  }

  /** The name and unit of board `id`: this gateway's device list, or what the board's own gateway says. */
  describeDevice(id: DeviceId): { name?: string; unit?: string } {
    return this.isRemote(id) ? this.replica.describeDevice(id) : describeDevice(this.options.devices, id);
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
    const { command, sync } = this.topics;
    const { replica } = this;
    const own = this.options.gateway;
    for (const [filter, route] of this.routes(replica)) {
      transport.subscribe(filter, (topic, payload, retained) => {
        const rest = levelsAfter(this.options.prefix, topic);
        this.safely(() => route(payload, rest ?? [], topic, retained === true));
      });
      this.subscribed.push(filter);
    }
    for (const [filter, route] of [
      [command(own, 'send'), (payload: Buffer) => replica.command('send', payload)],
      [command(own, 'close'), (payload: Buffer) => replica.command('close', payload)],
      [sync(own), (payload: Buffer) => this.synced(payload.toString('utf8'))],
    ] as const) {
      transport.subscribe(filter, (_topic, payload) => this.safely(() => route(payload)));
      this.subscribed.push(filter);
    }
    this.broker.setShare(this);
    this.detachRaw = this.broker.listen({ raw: (event) => this.publisher.raw(event) });
    this.remote.startSweeping();
  }

  /** What each of the fleet's wildcard topics does: `rest` is the topic's levels after the prefix. */
  private routes(replica: Replica) {
    type Route = (payload: Buffer, rest: string[], topic: string, retained: boolean) => void;
    const { filters } = this.topics;
    const routes: [string, Route][] = [
      [
        filters.mailboxes,
        (payload, rest, topic, retained) =>
          rest.length === 2 && replica.mailbox(topic, idOfLevel(rest[1]), payload, retained),
      ],
      [
        filters.sets,
        // `<prefix>/mailbox/<id>/set`, or with a time to live in seconds: `.../set/<ttl>`.
        (payload, rest, topic) =>
          rest.length <= 4 && replica.set(topic, idOfLevel(rest[1]), payload, Number(rest[3] ?? 0) || 0),
      ],
      [filters.devices, (payload, rest) => rest.length === 2 && replica.device(idOfLevel(rest[1]), payload)],
      [filters.gateways, (payload, rest) => rest.length === 2 && replica.gateway(idOfLevel(rest[1]), payload)],
    ];
    if (this.options.attached) routes.push([filters.raw, (payload, rest) => rest.length === 2 && replica.raw(payload)]);
    return routes;
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
   * The transport is connected (again). The retained state of the fleet comes in through the subscriptions;
   * this gateway publishes its own once all of it has come (synced()), so that nothing it restored goes out
   * over a newer write.
   */
  setConnected(connected: boolean): void {
    if (connected === this.isConnected) return;
    this.isConnected = connected;
    this.endSync();
    this.publisher.stop();
    if (connected && this.transport) this.startSync(this.transport);
    this.safeEmit('state', { connected });
  }

  /** Whether this member is connected and in step with what the MQTT broker holds. */
  get inStep(): boolean {
    return this.isConnected && this.transport !== undefined && this.syncMarker === undefined;
  }

  /**
   * A flow's write of mailbox `target` (null or undefined: clears it): written here when this gateway owns
   * the id, else sent to its owner through `/set` (held until in step with the fleet). Throws, naming what
   * is wrong, for a value that cannot be sent.
   */
  write(target: unknown, value: unknown, ttlSeconds = 0): DeviceId {
    const id = mailboxIdOf(target);
    const clear = value === undefined || value === null;
    if (this.ownership.owns(id))
      return clear ? this.broker.clearMailbox(id) : this.broker.writeMailbox(id, value, ttlSeconds);
    let payload = '';
    if (!clear) {
      encodeReply(value, this.broker.options.replyFormat); // throws for a value that has no reply
      payload = Buffer.isBuffer(value) ? value.toString('utf8') : JSON.stringify(value);
    }
    if (this.inStep && this.transport) this.publisher.set(this.transport, id, payload, ttlSeconds);
    else {
      if (!this.pendingSets.has(id) && this.pendingSets.size >= this.broker.options.maxDevices)
        throw new Error(`sharing is not connected, and ${this.pendingSets.size} writes wait already`);
      this.pendingSets.set(id, { payload, ttlSeconds });
    }
    return id;
  }

  /** Publishes a marker to itself until it comes back: every retained message was delivered before it. */
  private startSync(transport: FleetTransport): void {
    this.replica.retainedOwn = new Map();
    this.replica.ownStateRetained = false;
    const marker = randomUUID();
    this.syncMarker = marker;
    const started = Date.now();
    const send = () => {
      // Its subscription may not be in place yet: sent again until it is, at most SYNC_WITHIN_MS.
      if (Date.now() - started >= SYNC_WITHIN_MS) this.synced(marker);
      else transport.publish(this.topics.sync(this.options.gateway), marker, false);
    };
    send();
    this.syncTimer = setInterval(() => this.safely(send), SYNC_RETRY_MS);
  }

  private endSync(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    this.syncMarker = undefined;
  }

  /** In step: this gateway's own writes newer than what is retained go out, then the writes that waited. */
  private synced(marker: string): void {
    if (marker !== this.syncMarker || !this.transport) return;
    this.endSync();
    const retainedOwn = this.replica.retainedOwn ?? new Map<DeviceId, number>();
    this.replica.retainedOwn = undefined;
    this.publisher.start(this.transport, retainedOwn, this.replica.ownStateRetained);
    for (const [id, { payload, ttlSeconds }] of this.pendingSets)
      this.publisher.set(this.transport, id, payload, ttlSeconds);
    this.pendingSets.clear();
  }

  /** The gateway that writes mailbox `id` on MQTT (docs/PROTOCOL.md, sharing), if one is online. */
  ownerOf(id: DeviceId): string | undefined {
    return this.ownership.ownerOf(id);
  }

  /** Writes to (or closes) connections on the gateway `gateway`, through its command topic. */
  command(gateway: string, command: 'send' | 'close', target: SharedCommand): void {
    this.publisher.command(gateway, command, target);
  }

  // ---- this broker's changes (ShareHook) -------------------------------------

  written(id: DeviceId, mailbox: Mailbox | undefined, want?: DeviceId, connection?: ConnectionInfo): void {
    if (mailbox?.gateway !== undefined) return; // taken in from the fleet: never sent back
    this.replica.forget(id);
    if (mailbox) this.publisher.mailbox(id, want, connection);
    else this.publisher.cleared(id);
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
      this.warn(`sharing: ${errorText(err)}`);
    }
  }
}
