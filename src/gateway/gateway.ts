/**
 * tcpmq-gateway: the core broker as a service of its own, with no Node-RED.
 * It owns the boards' connections, so they outlive any Node-RED restart, and
 * speaks MQTT (the fleet's topics) to everything else: Node-RED in fleet mode,
 * Home Assistant, other gateways. Without an MQTT URL it serves alone, as the
 * field's PC broker script did.
 */

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { TlsOptions } from 'node:tls';
import { TcpmqBroker, brokerOptions } from '../broker';
import { limitedWarnings, loggedOnce } from '../events/rate-limit';
import { errorText } from '../events/safe-emitter';
import { Fleet } from '../fleet/fleet';
import { topicPrefix, type SharedGateway } from '../fleet/topics';
import { connectionName } from '../protocol/connection-info';
import { printable } from '../protocol/printable';
import { VERSION } from '../settings/version';
import type { BrokerSnapshot } from '../store/snapshot';
import { SnapshotFile } from '../store/snapshot-file';
import { SnapshotSaver } from '../store/snapshot-saver';
import type { Log } from './log';
import { connectMqtt, type MqttLink } from './mqtt-transport';
import type { GatewayOptions } from './options';

function tlsOptions({ tlsCert, tlsKey, tlsCa }: GatewayOptions): TlsOptions | undefined {
  if (!tlsCert) return undefined;
  const ca = tlsCa ? readFileSync(tlsCa) : undefined;
  return { cert: readFileSync(tlsCert), key: readFileSync(tlsKey), ca, requestCert: !!ca, rejectUnauthorized: !!ca };
}

/**
 * How a worker of tcpmq-gateway's holder runs the gateway (worker.ts): the holder listens and hands it
 * every socket, and the holder's MQTT will speaks for the gateway, so a worker replaced or crashed never
 * makes the gateway say offline.
 */
interface GatewayHost {
  /** When the service started (the holder), for the gateway's state. */
  startedAt: number;
  /** The MQTT session is up. */
  connected(): void;
}

export class Gateway {
  readonly broker: TcpmqBroker;
  readonly name: string;
  private fleet: Fleet | undefined;
  private link: MqttLink | undefined;
  private readonly saver: SnapshotSaver | undefined;
  private readonly startedAt: number;

  constructor(
    private options: GatewayOptions,
    private readonly log: Log,
    private readonly host?: GatewayHost,
  ) {
    this.startedAt = host?.startedAt ?? Date.now();
    this.name = options.gateway || hostname();
    this.broker = new TcpmqBroker(brokerOptions(options, tlsOptions(options)));
    const file = options.persist ? new SnapshotFile(options.persist) : undefined;
    this.saver = file && this.persistTo(file);
    this.logEvents();
  }

  /** Starts serving: from `handed` (a worker's state, see worker.ts) if given, else from persist. */
  async start(handed?: BrokerSnapshot): Promise<void> {
    if (handed) {
      this.broker.restore(handed);
      this.saver?.resume();
    } else if (await this.saver?.start()) this.log.info(`persist: restored ${this.options.persist}`);
    this.broker.start({ listen: !this.host });
    if (this.options.mqtt) this.share();
  }

  /** An upgrade (worker.ts): sharing and saving stop here, for the next worker to go on with; MQTT stays up. */
  freeze(): void {
    this.saver?.stop(false);
    this.fleet?.detach();
  }

  /** Ends the MQTT session without a word (no offline state, no will): the next worker speaks for the gateway. */
  async leave(): Promise<void> {
    if (this.link) await Promise.race([this.link.end(), new Promise((resolve) => setTimeout(resolve, 1000))]);
  }

  /** New settings (SIGHUP), applied as a deploy applies them: connections kept, what no longer passes closed. */
  apply(options: GatewayOptions): void {
    const restartNeeded = ['mqtt', 'shareTopic', 'gateway', 'persist'].filter(
      (key) => options[key as keyof GatewayOptions] !== this.options[key as keyof GatewayOptions],
    );
    this.options = options;
    this.broker.configure(brokerOptions(options, tlsOptions(options)));
    if (this.fleet) {
      this.fleet.options.haDiscovery = options.haDiscovery;
      this.fleet.options.minIntervalMs = options.publishInterval;
      this.fleet.setDevices(options.devices);
    }
    this.log.info(
      `settings applied${restartNeeded.length ? `; ${restartNeeded.join(', ')} apply at the next start` : ''}`,
    );
  }

  /** Saves persist, says offline on MQTT, closes every connection. */
  async stop(): Promise<void> {
    await this.saver?.stop();
    if (this.link) {
      this.fleet?.detach();
      if (this.link.client.connected && this.fleet) {
        this.link.publish(this.fleet.topics.gateway(this.name), JSON.stringify(this.offline()), true);
      }
      await Promise.race([this.link.end(), new Promise((resolve) => setTimeout(resolve, 1000))]);
    }
    await this.broker.stop();
  }

  private share(): void {
    const prefix = topicPrefix(this.options.shareTopic);
    const fleet = new Fleet(this.broker, {
      prefix,
      gateway: this.name,
      haDiscovery: this.options.haDiscovery,
      minIntervalMs: this.options.publishInterval,
      devices: this.options.devices,
      announce: { model: 'tcpmq-gateway', startedAt: this.startedAt, counters: () => this.counters() },
    });
    const clientId = `tcpmq-gateway-${this.name}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, '_');
    // Under a holder, the holder's will speaks for the gateway: a worker that goes says nothing.
    const will = this.host
      ? undefined
      : { topic: fleet.topics.gateway(this.name), payload: JSON.stringify(this.offline()) };
    const link = connectMqtt(this.options.mqtt, clientId, will);
    this.fleet = fleet;
    this.link = link;
    const where = redacted(this.options.mqtt);
    link.client.on('connect', () => {
      this.log.info(`MQTT connected to ${where}, sharing as gateway "${this.name}" under ${prefix}/`);
      fleet.setConnected(true);
      this.host?.connected();
    });
    link.client.on('close', () => {
      if (fleet.connected) this.log.warn(`MQTT connection to ${where} lost; boards are served on, reconnecting`);
      fleet.setConnected(false);
    });
    // Reconnecting repeats the same failure every few seconds: logged once.
    const mqttError = loggedOnce((error) => this.log.warn(`MQTT ${where}: ${error}`));
    link.client.on('error', (err) => mqttError.failed(errorText(err)));
    link.client.on('connect', () => mqttError.recovered());
    fleet.listen({ warning: (text) => this.log.warn(text) });
    fleet.attach(link);
  }

  /** What its state says it counted. A gateway has no flows: that no one listened to a request is no news here. */
  private counters(): Record<string, number> {
    const { connectionCount, onlineCount } = this.broker;
    const counters: Record<string, number> = { ...this.broker.counters };
    delete counters.unheardRequests;
    return { ...counters, openConnections: connectionCount, devicesOnline: onlineCount };
  }

  /** What the will says, and what a stop says: this gateway is gone. */
  private offline(): SharedGateway {
    return { online: false, version: VERSION, startedAt: this.startedAt };
  }

  /** persist: the snapshot in `file`, its failures logged. */
  private persistTo(file: SnapshotFile): SnapshotSaver {
    return new SnapshotSaver(this.broker, file, {
      restore: (err) => this.log.error(`persist: cannot read ${file.file} (it is kept as it is): ${errorText(err)}`),
      save: (err) => this.log.error(`persist: cannot write ${file.file}: ${errorText(err)}`),
    });
  }

  /** One line per event; what devices cause is rate-limited, their text made printable. */
  private logEvents(): void {
    const warn = limitedWarnings(
      (text: string) => this.log.warn(text),
      (count) => this.log.warn(`${count} more warnings in the last minute were not logged`),
    );
    // Retries repeat the same failure every few seconds: logged once.
    const listenError = loggedOnce((error) =>
      this.log.error(`${error}; retrying every ${this.broker.options.retryInterval / 1000} s`),
    );
    this.broker.listen({
      state: (status) => {
        if (status.state === 'listening') {
          listenError.recovered();
          this.log.info(`listening on ${status.host}:${status.port}`);
        } else if (status.state === 'error') listenError.failed(status.error);
      },
      online: (device) => this.log.info(`device ${printable(device.id)} online from ${device.remoteAddress}`),
      offline: (device) => this.log.info(`device ${printable(device.id)} offline`),
      connection: (info) => this.log.debug(`connection ${info.connectionId} from ${connectionName(info)}`),
      disconnect: (info) => this.log.debug(`connection ${info.connectionId} from ${connectionName(info)} closed`),
      rejected: (event) => warn(`${connectionName(event)}: ${event.kind}: ${event.reason}`),
      warning: warn,
    });
  }
}

/** An MQTT URL without its password, for a log line. */
function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return printable(url);
  }
}
