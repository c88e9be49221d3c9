/** The tcpmq-in node's editor: a message out for each request a device makes. */

import { USER_NODE_LOOK, userNodeDefaults, userNodeLabelStyle } from './user-node';

interface InProperties {
  name: string;
  broker: string;
  device: string;
  numbers: boolean;
  binary: boolean;
  remote: boolean;
}

RED.nodes.registerType<InProperties>('tcpmq-in', {
  ...USER_NODE_LOOK,
  defaults: {
    ...userNodeDefaults(),
    numbers: { value: true },
    binary: { value: false },
    remote: { value: false },
  },
  inputs: 0,
  outputs: 1,
  paletteLabel: 'tcpmq in',
  label() {
    return this.name || (this.device ? `tcpmq ${this.device}` : 'tcpmq in');
  },
  labelStyle: userNodeLabelStyle,
  outputLabels() {
    return this._('tcpmq-in.port.output');
  },
});
