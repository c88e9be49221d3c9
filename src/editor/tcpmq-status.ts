/** The tcpmq-status node's editor: devices online and offline, and the device table on request. */

interface StatusProperties {
  name: string;
  broker: string;
  device: string;
  remote: boolean;
}

RED.nodes.registerType<StatusProperties>('tcpmq-status', {
  category: 'network',
  color: '#7EC3C0',
  defaults: {
    name: { value: '' },
    broker: { value: '', type: 'tcpmq-broker', required: true },
    device: { value: '' },
    remote: { value: false },
  },
  inputs: 1,
  outputs: 1,
  icon: 'tcpmq.svg',
  paletteLabel: 'tcpmq status',
  label() {
    return this.name || (this.device ? `tcpmq status ${this.device}` : 'tcpmq status');
  },
  labelStyle() {
    return this.name ? 'node_label_italic' : '';
  },
  inputLabels() {
    return this._('tcpmq-status.port.input');
  },
  outputLabels() {
    return this._('tcpmq-status.port.output');
  },
});
