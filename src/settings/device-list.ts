/**
 * The device list of a broker (the tcpmq-broker node's `devices`, the
 * gateway's `devices` key): a name, a unit and a kind per board id, for the
 * sidebar, the flows (`msg.name`) and Home Assistant. Ids not listed work as
 * they always did.
 */

import { canonicalId, type DeviceId } from '../protocol/request';

const DEVICE_KINDS = ['sensor', 'binary', 'text'] as const;
/** sensor: numbers (or text); binary: on/off; text: free text. */
type DeviceKind = (typeof DEVICE_KINDS)[number];

export interface ListedDevice {
  id: DeviceId;
  name: string;
  unit: string;
  kind: DeviceKind;
  /** Home Assistant's device_class (temperature, humidity, …); empty for none. */
  deviceClass: string;
  /** Seconds between two reports, when the board keeps a pace (0: not said). */
  interval: number;
}

export type DeviceList = ReadonlyMap<DeviceId, ListedDevice>;

/** Home Assistant's device classes are lower-case words joined by `_`. */
const DEVICE_CLASS = /^[a-z][a-z0-9_]*$/;

/**
 * The list from what the editor or a config file saved (an array of
 * `{id, name, unit, kind, deviceClass, interval}`); entries that cannot work
 * are left out and said in `problems`.
 */
export function readDeviceList(raw: unknown): { list: DeviceList; problems: string[] } {
  const list = new Map<DeviceId, ListedDevice>();
  const problems: string[] = [];
  if (raw === undefined || raw === null || raw === '') return { list, problems };
  if (!Array.isArray(raw)) return { list, problems: ['devices: not a list'] };
  raw.forEach((entry: Record<string, unknown> | null, index) => {
    const where = `devices[${index}]`;
    const id = canonicalId(entry?.id);
    if (id === undefined || id === '') return problems.push(`${where}: no id`);
    if (list.has(id)) return problems.push(`${where}: id ${JSON.stringify(id)} is listed twice`);
    const kind = String(entry?.kind ?? 'sensor') as DeviceKind;
    if (!DEVICE_KINDS.includes(kind))
      return problems.push(`${where}: kind ${JSON.stringify(kind)} is not one of ${DEVICE_KINDS.join(', ')}`);
    const deviceClass = String(entry?.deviceClass ?? '').trim();
    if (deviceClass && !DEVICE_CLASS.test(deviceClass))
      return problems.push(
        `${where}: device class ${JSON.stringify(deviceClass)} is not a Home Assistant device class`,
      );
    const interval = Number(entry?.interval ?? 0) || 0;
    if (interval < 0) return problems.push(`${where}: interval ${interval} is below 0`);
    const name = String(entry?.name ?? '').trim();
    list.set(id, { id, name, unit: String(entry?.unit ?? '').trim(), kind, deviceClass, interval });
    return undefined;
  });
  return { list, problems };
}

/** What a device row, a flow message or a published device says of a listed id: its name and unit. */
export function describeDevice(list: DeviceList | undefined, id: DeviceId): { name?: string; unit?: string } {
  const listed = list?.get(id);
  if (!listed) return {};
  return { ...(listed.name ? { name: listed.name } : {}), ...(listed.unit ? { unit: listed.unit } : {}) };
}
