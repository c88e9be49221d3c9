/** The tcpmq-out node's editor: writes a mailbox, or sends to / closes a device's connections. */
import { USER_NODE_LOOK, userNodeDefaults, userNodeLabelStyle } from './user-node';
import { type Catalogue, type Validator, isEmpty, isSeconds, registerType, validator } from './validators';

type Action = 'mailbox' | 'send' | 'close';

interface OutNode {
  name?: string;
  device?: string;
  action?: Action;
  _(key: string): string;
}

interface OutDefinition extends Catalogue {
  category: string;
  color: string;
  defaults: Record<string, { value: unknown; type?: string; required?: boolean; validate?: Validator<OutNode> }>;
  inputs: 1;
  outputs: 0;
  icon: string;
  align: 'right';
  paletteLabel: string;
  label(this: OutNode): string;
  labelStyle(this: OutNode): string;
  inputLabels(this: OutNode): string;
  oneditprepare(this: OutNode): void;
}

const definition: OutDefinition = {
  ...USER_NODE_LOOK,
  defaults: {
    ...userNodeDefaults(),
    action: { value: 'mailbox' },
  },
  inputs: 1,
  outputs: 0,
  align: 'right',
  paletteLabel: 'tcpmq out',
  label() {
    const verb = this.action === 'send' ? 'send ' : this.action === 'close' ? 'close ' : '';
    return this.name || (this.device ? `tcpmq ${verb}${this.device}` : `tcpmq ${verb || 'out'}`);
  },
  labelStyle: userNodeLabelStyle,
  inputLabels() {
    return this._('tcpmq-out.port.input');
  },
  oneditprepare() {
    const showAction = () => {
      const mailbox = $('#node-input-action').val() === 'mailbox';
      $('#tcpmq-out-device-label').text(this._(mailbox ? 'tcpmq-out.label.device' : 'tcpmq-out.label.connection'));
      $('#node-input-device').attr(
        'placeholder',
        this._(mailbox ? 'tcpmq-out.placeholder.device' : 'tcpmq-out.placeholder.connection'),
      );
      $('#tcpmq-out-ttl-row').toggle(mailbox);
    };
    $('#node-input-action').on('change', showAction);
    showAction();
  },
};
// Seconds, 0 or more; empty is 0 (kept until overwritten). Its message comes from the registered definition.
definition.defaults.ttl = {
  value: 0,
  validate: validator((value) => isEmpty(value) || isSeconds(0, Infinity)(value), definition, 'tcpmq-out.validate.ttl'),
};
registerType('tcpmq-out', definition);
