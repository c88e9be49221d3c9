/**
 * Home Assistant's MQTT discovery for a device of a gateway: one retained
 * sensor config, available while the device topic says online.
 */

import type { DeviceId } from '../protocol/request';
import { topicLevel } from './topics';

/** An id as Home Assistant's object ids allow: letters, digits, `_` and `-`; anything else by its code. */
export function objectId(id: DeviceId): string {
  return id.replace(/[^A-Za-z0-9-]/g, (char) => `_${char.codePointAt(0)!.toString(16)}`);
}

/** The discovery topic and retained config for device `id` of `gateway`. */
export function sensorDiscovery(prefix: string, gateway: string, id: DeviceId): { topic: string; config: object } {
  const level = topicLevel(id);
  const object = objectId(id);
  return {
    topic: `homeassistant/sensor/tcpmq_${object}/config`,
    config: {
      name: `TCPMQ ${id}`,
      unique_id: `tcpmq_${object}`,
      object_id: `tcpmq_${object}`,
      state_topic: `${prefix}/mailbox/${level}`,
      value_template: '{{ value_json.value }}',
      availability_topic: `${prefix}/device/${level}`,
      availability_template: "{{ 'online' if value_json.online else 'offline' }}",
      payload_available: 'online',
      payload_not_available: 'offline',
      device: {
        identifiers: [`tcpmq_${object}`],
        name: `TCPMQ device ${id}`,
        via_device: `tcpmq_gateway_${objectId(gateway)}`,
      },
    },
  };
}
