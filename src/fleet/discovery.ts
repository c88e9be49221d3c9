/**
 * Home Assistant's MQTT discovery (retained configs under `homeassistant/`):
 * each gateway is a device with a connectivity sensor; each board is a device
 * under its gateway with a sensor (numeric, with unit and history, when it
 * reports numbers) and a control that writes the mailbox it reads (a text
 * entity, or a switch for a listed binary board). A board is available while
 * its device topic and its gateway both say online, and its state expires
 * after offlineAfter without news (a gateway that died without a will).
 * Current keys only: `default_entity_id`, `origin`, no `object_id`.
 */

import type { DeviceId } from '../protocol/request';
import type { ListedDevice } from '../settings/device-list';
import { topicLevel } from './topics';

/** A retained discovery message: an empty payload removes the entity. */
export interface DiscoveryMessage {
  topic: string;
  payload: string;
}

interface DiscoveryContext {
  prefix: string;
  gateway: string;
  /** This package's version, for `origin` and the devices. */
  version: string;
  /** The gateway's kind, as Home Assistant's device model: `tcpmq-gateway`, `Node-RED`. */
  model: string;
  /** Seconds without news after which a board's state is unavailable: offlineAfter and a little. */
  expireAfter: number;
}

interface BoardFacts {
  id: DeviceId;
  listed?: ListedDevice;
  /** Its first reports were numbers. */
  numeric: boolean;
  /** The mailbox it reads (the `want` of its requests): where a command goes. */
  reads?: DeviceId;
}

/** Every platform a board may have an entity on: an entity it no longer has is removed. */
const BOARD_PLATFORMS = ['sensor', 'text', 'switch'] as const;

const ONLINE = "{{ 'online' if value_json.online else 'offline' }}";
/** Any value as Home Assistant's state: text as it is, anything else as JSON (not Python text), within 255 characters. */
const TEXT_VALUE = '{{ (value_json.value if value_json.value is string else value_json.value | tojson)[:255] }}';
/** A number, or None (an unknown state, not an error in Home Assistant's log) when it is not one. */
const NUMBER_VALUE = '{{ value_json.value | float(None) }}';
const BINARY_VALUE = "{{ 'ON' if (value_json.value | string | lower) in ['1', 'on', 'true', 'yes'] else 'OFF' }}";

/** An id as Home Assistant's object ids allow: letters, digits, `_` and `-`; anything else by its code. */
function objectId(id: DeviceId): string {
  return id.replace(/[^A-Za-z0-9-]/g, (char) => `_${char.codePointAt(0)!.toString(16)}`);
}

/** An entity id as Home Assistant makes one from a name: lowercase, `_` for anything but a-z, 0-9 and `_`. */
function entityId(platform: string, name: string): string {
  return `${platform}.${name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}

function origin(context: DiscoveryContext) {
  return {
    name: 'TCPMQ for Node-RED',
    sw_version: context.version,
    support_url: 'https://github.com/tcpmq/node-red-tcpmq',
  };
}

/** The gateway's device and entity ids, lowercase as Home Assistant's own. */
function gatewayIdentifier(gateway: string): string {
  return `tcpmq_gateway_${gateway.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}

/** The gateway as a device with a connectivity sensor, so that its boards' `via_device` resolves. */
export function gatewayDiscovery(context: DiscoveryContext): DiscoveryMessage {
  const object = gatewayIdentifier(context.gateway);
  const config = {
    name: null,
    unique_id: object,
    default_entity_id: entityId('binary_sensor', object),
    device_class: 'connectivity',
    state_topic: `${context.prefix}/gateway/${topicLevel(context.gateway)}`,
    value_template: "{{ 'ON' if value_json.online else 'OFF' }}",
    device: {
      identifiers: [object],
      name: `TCPMQ gateway ${context.gateway}`,
      manufacturer: 'TCPMQ',
      model: context.model,
      sw_version: context.version,
    },
    origin: origin(context),
  };
  return { topic: `homeassistant/binary_sensor/${object}/config`, payload: JSON.stringify(config) };
}

/** A board's entities: one message per platform, empty for the platforms it has none on. */
export function boardDiscovery(context: DiscoveryContext, board: BoardFacts): DiscoveryMessage[] {
  const { prefix, gateway } = context;
  const level = topicLevel(board.id);
  const object = `tcpmq_${objectId(board.id)}`;
  const kind = board.listed?.kind ?? (board.numeric ? 'sensor' : 'text');
  const common = {
    availability: [
      { topic: `${prefix}/device/${level}`, value_template: ONLINE },
      { topic: `${prefix}/gateway/${topicLevel(gateway)}`, value_template: ONLINE },
    ],
    availability_mode: 'all',
    device: {
      identifiers: [object],
      name: board.listed?.name || `TCPMQ ${board.id}`,
      manufacturer: 'TCPMQ',
      model: `MicroPython board (${kind})`,
      sw_version: context.version,
      via_device: gatewayIdentifier(gateway),
    },
    origin: origin(context),
  };
  const stateTopic = `${prefix}/mailbox/${level}`;
  const command = `${prefix}/mailbox/${topicLevel(board.reads ?? board.id)}/set`;
  const entities: Partial<Record<(typeof BOARD_PLATFORMS)[number], object>> = {};
  if (kind === 'binary') {
    entities.switch = {
      name: null,
      unique_id: object,
      default_entity_id: entityId('switch', object),
      state_topic: stateTopic,
      value_template: BINARY_VALUE,
      command_topic: command,
      payload_on: 'on',
      payload_off: 'off',
      ...common,
    };
  } else {
    const numeric = kind === 'sensor' && (board.numeric || board.listed?.unit || board.listed?.deviceClass);
    entities.sensor = {
      name: null,
      unique_id: object,
      default_entity_id: entityId('sensor', object),
      state_topic: stateTopic,
      // A gateway that died without a will: the board's state is unavailable after offlineAfter without news.
      expire_after: context.expireAfter,
      value_template: numeric ? NUMBER_VALUE : TEXT_VALUE,
      ...(numeric ? { state_class: 'measurement' } : {}),
      ...(numeric && board.listed?.unit ? { unit_of_measurement: board.listed.unit } : {}),
      ...(numeric && board.listed?.deviceClass ? { device_class: board.listed.deviceClass } : {}),
      ...common,
    };
    entities.text = {
      name: 'Command',
      unique_id: `${object}_command`,
      default_entity_id: entityId('text', `${object}_command`),
      command_topic: command,
      max: 255,
      ...common,
    };
  }
  return BOARD_PLATFORMS.map((platform) => ({
    topic: `homeassistant/${platform}/${object}/config`,
    payload: entities[platform] ? JSON.stringify(entities[platform]) : '',
  }));
}

/** Removes every entity of board `id` (evicted, or gone from the list). */
export function boardRemoval(id: DeviceId): DiscoveryMessage[] {
  const object = `tcpmq_${objectId(id)}`;
  return BOARD_PLATFORMS.map((platform) => ({ topic: `homeassistant/${platform}/${object}/config`, payload: '' }));
}
