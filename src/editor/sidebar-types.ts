/** What the sidebar reads from the runtime's admin API and updates, and what it keeps per broker. */

export interface Device {
  id: string;
  /** From the broker's device list (or its gateway's). */
  name?: string;
  unit?: string;
  gateway?: string;
  remoteAddress?: string;
  online?: boolean;
  lastSeen?: number;
  lastValue?: unknown;
  messages?: number;
}

export interface Connection {
  connectionId: number;
  remoteAddress: string;
  remotePort: number;
  kind: string;
  connectedAt: number;
  bytesIn: number;
  bytesOut: number;
}

/** What the admin API and the updates say of a broker besides its devices. */
export interface Heading {
  id: string;
  name?: string;
  mode?: Mode;
  status?: { state?: string; host?: string; port?: number; error?: string };
  sharing?: { gateway: string; connected: boolean };
  connections?: Connection[];
}

/** GET tcpmq/brokers: one per deployed broker. */
export interface Summary extends Heading {
  devices?: Device[];
}

/** On topic tcpmq/broker/<id>: what changed, or that the broker is gone. */
export interface Update extends Heading {
  removed?: boolean;
  devices?: Device[];
  removedDevices?: string[];
}

/** A broker as the sidebar keeps it: what it was told, and its section of the page with a row per shown id. */
export interface SidebarBroker {
  heading: Heading;
  devices: Map<string, Device>;
  section: JQuery;
  title: JQuery;
  state: JQuery;
  sharing: JQuery;
  more: JQuery;
  /** The devices table has a gateway column (the broker shares through MQTT). */
  shared: boolean;
  deviceTable: JQuery;
  deviceRows: Map<string, JQuery>;
  plain: JQuery;
  connectionRows: Map<string, JQuery>;
}

/** The device or connection whose form is open. */
export interface Selection {
  brokerId: string;
  key: string;
  device?: string;
  /** The device as shown: "Kitchen (1)". */
  label?: string;
  connectionId?: number;
  address?: string;
}
