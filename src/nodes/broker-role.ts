/**
 * What each role of tcpmq-broker (server, client, fleet) is made from: the
 * node and its properties, read once through the settings schema and the
 * device list, with one limit for the warnings its devices or remote peers can
 * cause. A setting that cannot work is a warning, and its default applies.
 */

import type { Node, NodeAPI } from 'node-red';
import { limitedWarnings } from '../events/rate-limit';
import { readDeviceList, type DeviceList } from '../settings/device-list';
import { readSettings, type Mode, type Settings } from '../settings/schema';
import type { BrokerDef } from './broker-user';

/** What tcpmq-broker hands the role it runs. */
export interface RoleContext {
  RED: NodeAPI;
  node: Node;
  config: BrokerDef;
  /** Fans the role's status out to the user nodes. */
  showStatus: () => void;
  /** Runs `apply` once the deploy's nodes exist (settings for a runtime kept through the deploy). */
  later: (apply: () => void) => void;
}

export interface RoleSettings {
  settings: Settings;
  devices: DeviceList;
  /** A warning line, at most WARNINGS_PER_MINUTE a minute (rate-limit.ts); the next after a full minute counts the rest. */
  warn: (text: string) => void;
}

export function roleSettings({ RED, node, config }: RoleContext, mode: Mode): RoleSettings {
  const { settings, problems } = readSettings(config as unknown as Record<string, unknown>, mode);
  const { list: devices, problems: listProblems } = readDeviceList(config.devices);
  for (const problem of [...problems, ...listProblems]) node.warn(RED._('tcpmq-broker.errors.setting', { problem }));
  const warn = limitedWarnings(
    (text: string) => node.warn(text),
    (count) => node.warn(RED._('tcpmq-broker.log.unlogged', { count })),
  );
  return { settings, devices, warn };
}
