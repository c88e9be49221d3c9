/** What tcpmq in, out and status share in the editor: their look, and the properties that pick a broker and a device. */

/** Palette category, colour and icon. */
export const USER_NODE_LOOK = { category: 'network', color: '#7EC3C0', icon: 'tcpmq.svg' };

/** The node's name, its tcpmq-broker and its device filter (or mailbox). */
export function userNodeDefaults() {
  return {
    name: { value: '' },
    broker: { value: '', type: 'tcpmq-broker', required: true },
    device: { value: '' },
  };
}

/** A named node's label in italics, as Node-RED's own nodes do. */
export function userNodeLabelStyle(this: { name?: string }): string {
  return this.name ? 'node_label_italic' : '';
}
