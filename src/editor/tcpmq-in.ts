/** The tcpmq-in node's editor: a message out for each request a device makes. */

interface InProperties {
  name: string;
  broker: string;
  device: string;
  numbers: boolean;
  binary: boolean;
  remote: boolean;
}

RED.nodes.registerType<InProperties>('tcpmq-in', {
  category: 'network',
  color: '#7EC3C0',
  defaults: {
    name: { value: '' },
    broker: { value: '', type: 'tcpmq-broker', required: true },
    device: { value: '' },
    numbers: { value: true },
    binary: { value: false },
    remote: { value: false },
  },
  inputs: 0,
  outputs: 1,
  icon: 'tcpmq.svg',
  paletteLabel: 'tcpmq in',
  label() {
    return this.name || (this.device ? `tcpmq ${this.device}` : 'tcpmq in');
  },
  labelStyle() {
    return this.name ? 'node_label_italic' : '';
  },
  outputLabels() {
    return this._('tcpmq-in.port.output');
  },
});
