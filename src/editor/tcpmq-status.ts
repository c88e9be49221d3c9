/** The tcpmq-status node's editor: devices online and offline, and the device table on request. */

import { USER_NODE_LOOK, userNodeDefaults, userNodeLabelStyle } from './user-node';

interface StatusProperties {
  name: string;
  broker: string;
  device: string;
  remote: boolean;
}

RED.nodes.registerType<StatusProperties>('tcpmq-status', {
  ...USER_NODE_LOOK,
  defaults: {
    ...userNodeDefaults(),
    remote: { value: false },
  },
  inputs: 1,
  outputs: 1,
  paletteLabel: 'tcpmq status',
  label() {
    return this.name || (this.device ? `tcpmq status ${this.device}` : 'tcpmq status');
  },
  labelStyle: userNodeLabelStyle,
  inputLabels() {
    return this._('tcpmq-status.port.input');
  },
  outputLabels() {
    return this._('tcpmq-status.port.output');
  },
});
