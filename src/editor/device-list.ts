/**
 * The broker dialog's device list: a row per board (id, name, unit, kind,
 * Home Assistant device class, report interval), saved as the broker's
 * `devices` property, which src/settings/device-list.ts reads at runtime.
 * Built on Node-RED's editableList, as the core switch node's rules are.
 */

/** One board of the list, as the editor saves it. */
export interface DeviceEntry {
  id: string;
  name: string;
  unit: string;
  kind: string;
  deviceClass: string;
  /** Seconds between two reports, 0 when not said (text when it is not a number: the validator says so). */
  interval: number | string;
}

/** A catalogue message and its options. */
export interface Problem {
  key: string;
  options?: Record<string, string | number>;
}

/** As in src/settings/device-list.ts: sensor (numbers or text), binary (on/off), text. */
export const DEVICE_KINDS = ['sensor', 'binary', 'text'];
/** Home Assistant's device classes are lower-case words joined by `_` (src/settings/device-list.ts). */
const DEVICE_CLASS = /^[a-z][a-z0-9_]*$/;

const text = (value: unknown) => (value === undefined || value === null ? '' : String(value).trim());

function isInterval(value: unknown): boolean {
  if (text(value) === '') return true;
  const seconds = Number(text(value));
  return Number.isFinite(seconds) && seconds >= 0;
}

/** What is wrong with an entry of a list (`seen`: the ids of the entries before it), field by field. */
function entryProblems(entry: Partial<DeviceEntry>, seen: Set<string>): Map<keyof DeviceEntry, Problem> {
  const problems = new Map<keyof DeviceEntry, Problem>();
  const id = text(entry.id);
  if (id === '') problems.set('id', { key: 'tcpmq-broker.validate.deviceId' });
  else if (seen.has(id)) problems.set('id', { key: 'tcpmq-broker.validate.deviceTwice', options: { id } });
  const kind = text(entry.kind);
  if (kind !== '' && DEVICE_KINDS.indexOf(kind) < 0)
    problems.set('kind', { key: 'tcpmq-broker.validate.deviceKind', options: { id, kinds: DEVICE_KINDS.join(', ') } });
  const deviceClass = text(entry.deviceClass);
  if (deviceClass !== '' && !DEVICE_CLASS.test(deviceClass))
    problems.set('deviceClass', { key: 'tcpmq-broker.validate.deviceClass', options: { id, deviceClass } });
  if (!isInterval(entry.interval))
    problems.set('interval', { key: 'tcpmq-broker.validate.deviceInterval', options: { id } });
  return problems;
}

/** The first thing wrong with a saved `devices` property (none for a list that is missing or empty). */
export function deviceListProblem(value: unknown): Problem | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (!Array.isArray(value)) return { key: 'tcpmq-broker.validate.devices' };
  const seen = new Set<string>();
  for (const item of value as (Partial<DeviceEntry> | null)[]) {
    const entry = item ?? {};
    const problems = entryProblems(entry, seen);
    if (problems.size > 0) return problems.values().next().value;
    seen.add(text(entry.id));
  }
  return undefined;
}

/** The fields of a row, by the class of their input. */
const FIELDS: [keyof DeviceEntry, string][] = [
  ['id', 'tcpmq-device-id'],
  ['name', 'tcpmq-device-name'],
  ['unit', 'tcpmq-device-unit'],
  ['kind', 'tcpmq-device-kind'],
  ['deviceClass', 'tcpmq-device-class'],
  ['interval', 'tcpmq-device-interval'],
];

/** A row's entry as typed (the interval a number when it is one). */
function readRow(row: JQuery): DeviceEntry {
  const value = (field: string) => text(row.find(`.${field}`).val());
  const interval = value('tcpmq-device-interval');
  return {
    id: value('tcpmq-device-id'),
    name: value('tcpmq-device-name'),
    unit: value('tcpmq-device-unit'),
    kind: value('tcpmq-device-kind') || 'sensor',
    deviceClass: value('tcpmq-device-class'),
    interval: interval === '' ? 0 : isInterval(interval) ? Number(interval) : interval,
  };
}

/**
 * Makes `list` (an empty <ol>) the editable device list, filled with `devices`;
 * `message` gives the catalogue's text. Returns what to call in oneditsave: the
 * entries to save, rows without an id left out.
 */
export function deviceListEditor(
  list: JQuery,
  devices: unknown,
  message: (key: string, options?: Record<string, string | number>) => string,
): () => DeviceEntry[] {
  const rows = () =>
    list
      .editableList('items')
      .toArray()
      .map((element) => $(element));

  /** Marks the fields in error (an id twice, a bad device class or interval), with the reason as a tooltip. */
  function mark(): void {
    const seen = new Set<string>();
    for (const row of rows()) {
      const entry = readRow(row);
      const problems = entryProblems(entry, seen);
      // An empty row is left out when saved: not an error while it is being filled in.
      if (entry.id === '') problems.delete('id');
      for (const [field, className] of FIELDS) {
        const problem = problems.get(field);
        const input = row.find(`.${className}`);
        input.toggleClass('input-error', problem !== undefined);
        if (problem) input.attr('title', message(problem.key, problem.options));
        else input.attr('title', message(`tcpmq-broker.device.${field}`));
      }
      if (entry.id !== '') seen.add(entry.id);
    }
  }

  const input = (className: string, field: keyof DeviceEntry, value: unknown) =>
    $('<input type="text">')
      .addClass(className)
      .attr('placeholder', message(`tcpmq-broker.device.${field}`))
      .attr('title', message(`tcpmq-broker.device.${field}`))
      .val(text(value));

  list.addClass('tcpmq-devices').editableList<Partial<DeviceEntry>>({
    addItem(row, _index, entry) {
      const first = $('<div class="tcpmq-device-line"></div>').appendTo(row);
      input('tcpmq-device-id', 'id', entry.id).appendTo(first);
      input('tcpmq-device-name', 'name', entry.name).appendTo(first);
      input('tcpmq-device-unit', 'unit', entry.unit).appendTo(first);
      const second = $('<div class="tcpmq-device-line"></div>').appendTo(row);
      const kind = $('<select class="tcpmq-device-kind"></select>')
        .attr('title', message('tcpmq-broker.device.kind'))
        .appendTo(second);
      for (const choice of DEVICE_KINDS) {
        $('<option></option>')
          .val(choice)
          .text(message(`tcpmq-broker.kinds.${choice}`))
          .appendTo(kind);
      }
      // A kind the editor does not know (a list from elsewhere) is kept, and shown as wrong.
      const saved = text(entry.kind) || 'sensor';
      if (DEVICE_KINDS.indexOf(saved) < 0) $('<option></option>').val(saved).text(saved).appendTo(kind);
      kind.val(saved);
      input('tcpmq-device-class', 'deviceClass', entry.deviceClass).appendTo(second);
      const interval = entry.interval === 0 ? '' : entry.interval;
      input('tcpmq-device-interval', 'interval', interval).appendTo(second);
      $('<span class="tcpmq-device-seconds"></span>').text(message('tcpmq-broker.label.seconds')).appendTo(second);
      row.find('input, select').on('input change', mark);
      mark();
      if (entry.id === undefined) row.find('.tcpmq-device-id').trigger('focus');
    },
    removeItem: mark,
    sortable: true,
    removable: true,
    height: 'auto',
  });
  if (Array.isArray(devices)) list.editableList('addItems', devices as object[]);

  return () =>
    rows()
      .map(readRow)
      .filter((entry) => entry.id !== '');
}
