/**
 * The tcpmq-broker config node's editor. Its settings' defaults (its fields'
 * placeholders too), ranges and modes come from the settings schema (SCHEMA,
 * src/settings/schema.ts) that the runtime and the gateway read too; the dialog
 * shows a setting's row only in the setting's modes. Rows that hold no setting of the schema (TLS, persist,
 * the MQTT broker) name their modes in the template: data-modes="server fleet".
 * The device list (device-list.ts) is shown in every mode.
 */
import {
  type Catalogue,
  type Validator,
  isAddressList,
  isEmpty,
  isFilled,
  isInteger,
  isOneOf,
  isSeconds,
  registerType,
  validator,
} from './validators';
import { type DeviceEntry, deviceListEditor, deviceListProblem } from './device-list';

type Setting = (typeof SCHEMA)[string];

/** A tcpmq-broker node as the editor holds it: its properties, as saved (numbers may be text). */
interface BrokerNode {
  name?: string;
  mode?: Mode;
  host?: string;
  port?: string | number;
  clientId?: string;
  shareTopic?: string;
  devices?: DeviceEntry[];
  [property: string]: unknown;
}

interface Property {
  value: unknown;
  type?: string;
  required?: boolean;
  validate?: Validator<BrokerNode>;
}

interface BrokerDefinition extends Catalogue {
  category: 'config';
  defaults: Record<string, Property>;
  label(this: BrokerNode): string;
  oneditprepare(this: BrokerNode): void;
  oneditsave(this: BrokerNode): void;
  oneditcancel(this: BrokerNode): void;
  oneditdelete(this: BrokerNode): void;
}

const MODE = '#node-config-input-mode';
/** The device list's <ol> (not node-config-input-devices: Node-RED would read that as the property's value). */
const DEVICES = '#node-config-devices';

/** The node whose dialog is open: its mode is the one selected there, not yet saved. */
let editing: BrokerNode | undefined;
/** The open dialog's device list, as it would be saved. */
let readDevices: (() => DeviceEntry[]) | undefined;

function asMode(mode: unknown): Mode {
  return mode === 'client' || mode === 'fleet' ? mode : 'server';
}

function modeOf(node: BrokerNode): Mode {
  return asMode(node === editing ? $(MODE).val() : node.mode);
}

/** `check` applied only in `modes` (the field is hidden, and unused, in the others). */
function inModes(
  modes: readonly string[],
  check: (value: unknown) => boolean,
): (this: BrokerNode, value: unknown) => boolean {
  return function (value) {
    return modes.indexOf(modeOf(this)) < 0 || check(value);
  };
}

/**
 * The validator of `key`, from its type and range in the schema. An empty
 * number or choice is fine: the runtime applies the default (the placeholder).
 */
function settingValidator(catalogue: Catalogue, key: string, setting: Setting): Validator<BrokerNode> | undefined {
  const orEmpty = (check: (value: unknown) => boolean) => (value: unknown) => isEmpty(value) || check(value);
  const { min = -Infinity, max = Infinity, choices = [], modes } = setting;
  const rule = (check: (value: unknown) => boolean, message: string, options?: Record<string, string | number>) =>
    validator(inModes(modes, check), catalogue, `tcpmq-broker.validate.${message}`, options);
  if (key === 'allowFrom') return rule(isAddressList, 'allowFrom');
  if (key === 'clientId') return rule(isFilled, 'clientId');
  switch (setting.type) {
    case 'integer':
      return rule(orEmpty(isInteger(min, max)), 'integer', { min, max });
    case 'seconds':
      return rule(orEmpty(isSeconds(min, max)), 'seconds', { min, max });
    case 'choice':
      return rule(orEmpty(isOneOf(choices)), 'choice', { choices: choices.join(', ') });
    default:
      return undefined;
  }
}

/** Node-RED's `defaults`: every setting of the schema, with the editor's own properties. */
function defaults(catalogue: Catalogue): Record<string, Property> {
  const properties: Record<string, Property> = {
    name: { value: '' },
    mode: { value: 'server' },
  };
  for (const key of Object.keys(SCHEMA)) {
    const validate = settingValidator(catalogue, key, SCHEMA[key]);
    properties[key] = validate ? { value: SCHEMA[key].default, validate } : { value: SCHEMA[key].default };
  }
  properties.devices = {
    value: [],
    validate(value, opt) {
      const problem = deviceListProblem(value);
      if (!problem) return true;
      return opt && catalogue._ ? catalogue._(problem.key, problem.options) : false;
    },
  };
  properties.usetls = { value: false };
  properties.tls = { value: '', type: 'tls-config', required: false };
  properties.persist = { value: false };
  // Not `required: false`: Node-RED would then skip the validator for an empty value.
  properties.share = {
    value: '',
    type: 'mqtt-broker',
    validate: validator(
      function (this: BrokerNode, value) {
        return modeOf(this) !== 'fleet' || (isFilled(value) && value !== '_ADD_');
      },
      catalogue,
      'tcpmq-broker.validate.share',
    ),
  };
  return properties;
}

/** Shows the rows of `mode`: a setting's row in the setting's modes, other rows by their data-modes. */
function showMode(mode: Mode): void {
  for (const key of Object.keys(SCHEMA)) {
    $(`#node-config-input-${key}`)
      .closest('.form-row')
      .toggle(SCHEMA[key].modes.indexOf(mode) >= 0);
  }
  $(MODE)
    .closest('form')
    .find('[data-modes]')
    .each(function () {
      $(this).toggle(String($(this).attr('data-modes')).split(' ').indexOf(mode) >= 0);
    });
  $('#node-config-row-tls').toggle(mode === 'server' && $('#node-config-input-usetls').is(':checked'));
}

/** Each setting's default as the placeholder of its text field (what an empty one falls back to), unless the catalogue words it. */
function showDefaults(): void {
  for (const key of Object.keys(SCHEMA)) {
    const input = $(`#node-config-input-${key}`);
    if (input.is('input[type="text"]') && input.attr('data-i18n') === undefined)
      input.attr('placeholder', String(SCHEMA[key].default));
  }
}

/** The host's default follows the mode: listening on every interface, or the ESP32 hotspot's broker. */
function swapHostDefault(mode: Mode): void {
  const host = $('#node-config-input-host');
  const { default: server, clientDefault: client } = SCHEMA.host;
  if (mode === 'client' && host.val() === server) host.val(String(client));
  if (mode !== 'client' && host.val() === client) host.val(String(server));
}

const definition: BrokerDefinition = {
  category: 'config',
  defaults: {},
  label() {
    if (this.name) return this.name;
    switch (this.mode) {
      case 'client':
        return `tcpmq ${this.clientId} @ ${this.host}:${this.port}`;
      case 'fleet':
        return `tcpmq fleet ${this.shareTopic || SCHEMA.shareTopic.default}`;
      default:
        return `tcpmq :${this.port}`;
    }
  },
  oneditprepare() {
    // Its validators then read the mode selected in the dialog.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    editing = this;
    const selected = () => asMode($(MODE).val());
    $(MODE).on('change', () => {
      swapHostDefault(selected());
      showMode(selected());
    });
    $('#node-config-input-usetls').on('change', () => showMode(selected()));
    swapHostDefault(selected());
    showMode(selected());
    showDefaults();
    readDevices = deviceListEditor($(DEVICES), this.devices, (key, options) =>
      definition._ ? definition._(key, options) : key,
    );
  },
  oneditsave() {
    editing = undefined;
    if (readDevices) this.devices = readDevices();
    readDevices = undefined;
    if (!$('#node-config-input-usetls').is(':checked')) $('#node-config-input-tls').val('_ADD_');
  },
  oneditcancel() {
    editing = undefined;
    readDevices = undefined;
  },
  oneditdelete() {
    editing = undefined;
    readDevices = undefined;
  },
};

// The validators' messages come from the definition, which Node-RED gives `_` when it registers it.
definition.defaults = defaults(definition);
registerType('tcpmq-broker', definition);
