/**
 * The TCPMQ tab of the editor's sidebar, a Node-RED plugin: each deployed
 * broker, its devices and plain-text connections, live; write a mailbox or
 * send a line to the one selected. The whole list is read once (GET
 * tcpmq/brokers); after that each update (RED.comms, at most four a second
 * per broker, sent only while a sidebar says it is open) carries the device
 * rows that changed, and only those rows are redrawn.
 *
 * Each list is a table. At the sidebar's default width (315 px) each row is
 * laid out as a block, two lines a board (tcpmq.css); a sidebar dragged wider
 * shows the table with its headers.
 */

import type { Device, Connection, Heading, Summary, Update, SidebarBroker, Selection } from './sidebar-types';

/** Rows listed per broker: the most recently heard; a larger fleet is counted, not listed. */
const SHOWN = 200;
const DEVICE_COLUMNS = ['id', 'address', 'onlineColumn', 'lastSeen', 'lastValue', 'messages'];
const SHARED_DEVICE_COLUMNS = ['id', 'gateway', 'address', 'onlineColumn', 'lastSeen', 'lastValue', 'messages'];
const CONNECTION_COLUMNS = ['address', 'kind', 'since', 'bytes'];
/** How often an open sidebar tells the runtime that it is watching (updates stop a while after the last). */
const WATCH_EVERY_MS = 10000;

const plugin: { _?: (key: string, options?: Record<string, string | number>) => string; onadd(): void } = {
  onadd() {
    sidebar();
  },
};

/** A message of this plugin's catalogue (locales/<lang>/tcpmq-sidebar.json), which Node-RED gives the plugin as `_`. */
function t(key: string, options?: Record<string, string | number>): string {
  return plugin._ ? plugin._(`tcpmq-sidebar.${key}`, options) : key;
}

function ago(time: number): string {
  const seconds = Math.max(0, Math.round((Date.now() - time) / 1000));
  return seconds < 60 ? t('secondsAgo', { n: seconds }) : t('minutesAgo', { n: Math.round(seconds / 60) });
}

function shown(value: unknown): string {
  if (value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** A board as people call it: its name with its id, "Kitchen (1)", or its id. */
function deviceLabel(device: Device): string {
  return device.name ? `${device.name} (${device.id})` : device.id;
}

const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** A last value with the board's unit after it when it is a number ("21.5 °C"). */
function valueText(device: Device): string {
  const text = shown(device.lastValue);
  return device.unit && NUMBER.test(text.trim()) ? `${text} ${device.unit}` : text;
}

/** Sets a cell's text (and its tooltip, for the text an ellipsis cuts), touching the page only if it changed. */
function setText(element: JQuery, text: string): void {
  if (element.text() !== text) element.text(text).attr('title', text);
}

function headerRow(columns: string[]): JQuery {
  const row = $('<tr></tr>');
  for (const column of columns) $('<th></th>').addClass(`tcpmq-sidebar-column-${column}`).text(t(column)).appendTo(row);
  return row;
}

/**
 * A row of empty cells, one per column, each with its column's class and its
 * column's name as data-label (a row laid out as a block shows some of them
 * before the value, as the table's header would).
 */
function emptyRow(className: string, columns: string[]): JQuery {
  const row = $('<tr></tr>').addClass(className);
  for (const column of columns) {
    $('<td></td>').addClass(`tcpmq-sidebar-column-${column}`).attr('data-label', t(column)).appendTo(row);
  }
  return row;
}

/** A row's cell of `column` (none if the row has no such column). */
function cell(row: JQuery, column: string): JQuery {
  return row.children(`.tcpmq-sidebar-column-${column}`);
}

/** "● online" in green or "○ offline" in grey. */
function showOnline(td: JQuery, online: boolean): void {
  const state = `${online ? '● ' : '○ '}${t(online ? 'online' : 'offline')}`;
  if (td.text() === state) return;
  td.empty();
  $('<span></span>')
    .addClass(online ? 'tcpmq-sidebar-online' : 'tcpmq-sidebar-offline')
    .text(state)
    .appendTo(td);
}

/** A cell that says how long ago `time` was, and keeps counting (tick). */
function showAgo(td: JQuery, time: number | undefined): void {
  td.addClass('tcpmq-sidebar-ago').attr('data-time', time ? String(time) : '');
  setText(td, time ? ago(time) : '');
}

function fillDeviceRow(row: JQuery, device: Device): void {
  setText(cell(row, 'id'), deviceLabel(device));
  setText(cell(row, 'gateway'), device.gateway ?? '');
  setText(cell(row, 'address'), device.remoteAddress ?? '');
  showOnline(cell(row, 'onlineColumn'), !!device.online);
  showAgo(cell(row, 'lastSeen'), device.lastSeen);
  setText(cell(row, 'lastValue'), valueText(device));
  setText(cell(row, 'messages'), device.messages === undefined ? '' : String(device.messages));
}

function connectionAddress(connection: Connection): string {
  return `${connection.remoteAddress}:${connection.remotePort}`;
}

function fillConnectionRow(row: JQuery, connection: Connection): void {
  setText(cell(row, 'address'), connectionAddress(connection));
  setText(cell(row, 'kind'), connection.kind);
  showAgo(cell(row, 'since'), connection.connectedAt);
  setText(cell(row, 'bytes'), `${connection.bytesIn} / ${connection.bytesOut}`);
}

/**
 * Makes `body` list `items` in order, with one row per key: rows of keys gone
 * are removed, new keys get a row, and `fill` runs for new rows and for the
 * keys that `changed` says changed. Rows already in place are not touched.
 */
function syncRows<T>(
  body: JQuery,
  rows: Map<string, JQuery>,
  items: T[],
  keyOf: (item: T) => string,
  create: (item: T) => JQuery,
  fill: (row: JQuery, item: T) => void,
  changed: (key: string) => boolean,
): void {
  const keys = new Set(items.map(keyOf));
  for (const [key, row] of rows) {
    if (!keys.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
  items.forEach((item, index) => {
    const key = keyOf(item);
    let row = rows.get(key);
    if (!row) {
      row = create(item);
      rows.set(key, row);
      fill(row, item);
    } else if (changed(key)) {
      fill(row, item);
    }
    const here = body[0].children[index];
    if (here !== row[0]) {
      if (here) row.insertBefore(here);
      else row.appendTo(body);
    }
  });
}

const keyOfDevice = (device: Device) => `device:${device.id}`;
const keyOfConnection = (connection: Connection) => `connection:${connection.connectionId}`;

/** The devices table's columns: a gateway column while the broker shares; the rows are made again. */
function setColumns(broker: SidebarBroker, shared: boolean): void {
  broker.shared = shared;
  broker.deviceTable
    .children('thead')
    .empty()
    .append(headerRow(shared ? SHARED_DEVICE_COLUMNS : DEVICE_COLUMNS));
  broker.deviceTable.children('tbody').empty();
  broker.deviceRows.clear();
}

/** A broker's title (its name, or where it listens), its state and its sharing. */
function showHeading(broker: SidebarBroker): void {
  const { heading } = broker;
  const status = heading.status ?? {};
  const where = `${status.host ?? ''}:${status.port ?? ''}`;
  const connections = heading.connections ?? [];
  let title = heading.name;
  if (!title) {
    if (heading.mode === 'client') title = t('clientOf', { where });
    else if (heading.mode === 'fleet') title = t('fleet');
    else title = t('listeningOn', { where });
  }
  setText(broker.title, title);
  setText(
    broker.state,
    `${t(`state.${status.state}`)}${status.error ? `: ${status.error}` : ''} · ${t('connections', { count: connections.length })}`,
  );
  const sharing = heading.sharing;
  broker.sharing.toggle(!!sharing);
  if (sharing)
    setText(broker.sharing, t(sharing.connected ? 'sharingOn' : 'sharingDown', { gateway: sharing.gateway }));
  if (!!sharing !== broker.shared) setColumns(broker, !!sharing);
}

/** The form under the lists, for the device or connection selected: write its mailbox or send it a line. */
interface Form {
  element: JQuery;
  target: JQuery;
  input: JQuery;
  mailboxButton: JQuery;
  sendButton: JQuery;
  result: JQuery;
}

function createForm(): Form {
  const element = $('<div class="tcpmq-sidebar-form"></div>').hide();
  return {
    element,
    target: $('<div class="tcpmq-sidebar-target"></div>').appendTo(element),
    input: $('<input type="text" class="tcpmq-sidebar-text">').attr('placeholder', t('placeholder')).appendTo(element),
    mailboxButton: $('<button type="button" class="red-ui-button tcpmq-sidebar-mailbox"></button>')
      .text(t('writeMailbox'))
      .appendTo(element),
    sendButton: $('<button type="button" class="red-ui-button tcpmq-sidebar-send"></button>')
      .text(t('sendLine'))
      .appendTo(element),
    result: $('<div class="tcpmq-sidebar-result"></div>').appendTo(element),
  };
}

/** The tab's content: every deployed broker as it was told, the selection and its form. */
class TcpmqSidebar {
  readonly content = $('<div class="tcpmq-sidebar"></div>');
  private readonly list = $('<div class="tcpmq-sidebar-brokers"></div>').appendTo(this.content);
  private readonly empty = $('<p class="tcpmq-sidebar-empty"></p>').text(t('empty')).appendTo(this.list);
  private readonly form = createForm();
  private readonly brokers = new Map<string, SidebarBroker>();
  private selected: Selection | null = null;

  constructor() {
    this.form.element.appendTo(this.content);
    this.form.mailboxButton.on('click', () => {
      if (this.selected) this.post('mailbox', { device: this.selected.device, payload: this.form.input.val() });
    });
    this.form.sendButton.on('click', () => {
      if (!this.selected) return;
      const text = this.form.input.val();
      const { connectionId, device } = this.selected;
      this.post('send', connectionId !== undefined ? { connectionId, text } : { device, text });
    });
  }

  /** Every broker from the admin API, drawn anew. */
  load(): void {
    $.getJSON('tcpmq/brokers', (summaries: Summary[]) => {
      for (const broker of this.brokers.values()) broker.section.remove();
      this.brokers.clear();
      for (const { devices = [], ...heading } of summaries) {
        const broker = this.addBroker(heading);
        for (const device of devices) broker.devices.set(device.id, device);
        showHeading(broker);
        this.showRows(broker, () => true);
      }
      this.empty.toggle(this.brokers.size === 0);
      if (this.selected && !this.brokers.has(this.selected.brokerId)) this.select(null);
    });
  }

  /** Merges an update into its broker and redraws what it changed. */
  apply(update: Update): void {
    const broker = this.brokers.get(update.id);
    if (update.removed) {
      this.removeBroker(update.id);
      return;
    }
    if (!broker) {
      this.load(); // a broker deployed since: read it whole
      return;
    }
    const { devices = [], removedDevices = [] } = update;
    const { id, name, mode, status, sharing, connections } = update;
    broker.heading = { id, name, mode, status, sharing, connections };
    for (const device of devices) broker.devices.set(device.id, device);
    for (const removed of removedDevices) broker.devices.delete(removed);
    const shared = broker.shared;
    showHeading(broker);
    const redraw = new Set(devices.map(keyOfDevice));
    this.showRows(broker, broker.shared !== shared ? () => true : (key) => redraw.has(key));
  }

  /** "5 s ago" keeps counting. */
  tick(): void {
    this.list.find('.tcpmq-sidebar-ago').each(function () {
      const time = Number($(this).attr('data-time'));
      if (time) setText($(this), ago(time));
    });
  }

  private removeBroker(id: string): void {
    this.brokers.get(id)?.section.remove();
    this.brokers.delete(id);
    this.empty.toggle(this.brokers.size === 0);
    if (this.selected?.brokerId === id) this.select(null);
  }

  /** A broker's section, empty: its heading and tables are filled by showHeading and showRows. */
  private addBroker(heading: Heading): SidebarBroker {
    const section = $('<div class="tcpmq-sidebar-broker"></div>').attr('data-broker', heading.id).appendTo(this.list);
    const broker: SidebarBroker = {
      heading,
      devices: new Map(),
      section,
      title: $('<div class="tcpmq-sidebar-title"></div>').appendTo(section),
      state: $('<div class="tcpmq-sidebar-state"></div>').appendTo(section),
      sharing: $('<div class="tcpmq-sidebar-sharing"></div>').appendTo(section),
      more: $('<div class="tcpmq-sidebar-more"></div>').appendTo(section),
      shared: false,
      deviceTable: $('<table class="tcpmq-sidebar-devices"><thead></thead><tbody></tbody></table>').appendTo(section),
      deviceRows: new Map(),
      plain: $('<div class="tcpmq-sidebar-plain"></div>').appendTo(section),
      connectionRows: new Map(),
    };
    $('<div></div>').text(t('plainText')).appendTo(broker.plain);
    $('<table class="tcpmq-sidebar-connections"><thead></thead><tbody></tbody></table>').appendTo(broker.plain);
    broker.plain.find('thead').append(headerRow(CONNECTION_COLUMNS));
    setColumns(broker, !!heading.sharing);
    this.brokers.set(heading.id, broker);
    return broker;
  }

  /** The rows: devices most recently heard first (the `changed` ones redrawn), then plain-text connections. */
  private showRows(broker: SidebarBroker, changed: (key: string) => boolean): void {
    const id = broker.heading.id;
    const devices = [...broker.devices.values()].sort((a, b) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0));
    broker.more.toggle(devices.length > SHOWN);
    if (devices.length > SHOWN) setText(broker.more, t('more', { shown: SHOWN, count: devices.length }));
    syncRows(
      broker.deviceTable.children('tbody'),
      broker.deviceRows,
      devices.slice(0, SHOWN),
      keyOfDevice,
      (device) => this.deviceRow(id, device, broker.shared),
      fillDeviceRow,
      changed,
    );
    const plain = (broker.heading.connections ?? []).filter((connection) => connection.kind !== 'tcpmq');
    broker.plain.toggle(plain.length > 0);
    syncRows(
      broker.plain.find('tbody'),
      broker.connectionRows,
      plain,
      keyOfConnection,
      (connection) => this.connectionRow(id, connection),
      fillConnectionRow,
      () => true,
    );
  }

  private deviceRow(brokerId: string, device: Device, shared: boolean): JQuery {
    const key = keyOfDevice(device);
    const row = emptyRow('tcpmq-sidebar-device', shared ? SHARED_DEVICE_COLUMNS : DEVICE_COLUMNS);
    row.attr('data-device', device.id).toggleClass('tcpmq-sidebar-selected', this.isSelected(brokerId, key));
    // The label as it is when clicked (a name may come or go with a deploy).
    row.on('click', () => {
      const current = this.brokers.get(brokerId)?.devices.get(device.id) ?? device;
      this.select({ brokerId, key, device: device.id, label: deviceLabel(current) });
    });
    return row;
  }

  private connectionRow(brokerId: string, connection: Connection): JQuery {
    const key = keyOfConnection(connection);
    const row = emptyRow('tcpmq-sidebar-connection', CONNECTION_COLUMNS);
    row.attr('data-connection', String(connection.connectionId));
    row.toggleClass('tcpmq-sidebar-selected', this.isSelected(brokerId, key));
    const { connectionId } = connection;
    const address = connectionAddress(connection);
    row.on('click', () => this.select({ brokerId, key, connectionId, address }));
    return row;
  }

  private isSelected(brokerId: string, key: string): boolean {
    return this.selected !== null && this.selected.brokerId === brokerId && this.selected.key === key;
  }

  /** Selects a device or connection (or none): its row marked, the form open for it. */
  private select(choice: Selection | null): void {
    this.selected = choice;
    const { element, target, mailboxButton, result } = this.form;
    element.toggle(choice !== null);
    if (choice) {
      target.text(
        choice.device !== undefined
          ? t('device', { id: choice.label ?? choice.device })
          : t('connection', { address: choice.address ?? '' }),
      );
      mailboxButton.toggle(choice.device !== undefined);
      result.text('');
    }
    this.list.find('tr.tcpmq-sidebar-selected').removeClass('tcpmq-sidebar-selected');
    if (choice) {
      const broker = this.brokers.get(choice.brokerId);
      const row = broker?.deviceRows.get(choice.key) ?? broker?.connectionRows.get(choice.key);
      row?.addClass('tcpmq-sidebar-selected');
    }
  }

  /** POSTs to the selected broker's admin route `path`; the form says "done" or the error. */
  private post(path: string, body: object): void {
    if (!this.selected) return;
    const { result } = this.form;
    result.text('');
    $.ajax({
      url: `tcpmq/brokers/${encodeURIComponent(this.selected.brokerId)}/${path}`,
      method: 'POST',
      contentType: 'application/json',
      data: JSON.stringify(body),
    })
      .done(() => result.text(t('done')))
      .fail((xhr) => result.text(xhr.responseJSON?.error ?? xhr.statusText));
  }
}

/** Adds the tab, subscribes to the brokers' updates, tells the runtime it is watching, and loads the list. */
function sidebar(): void {
  const tab = new TcpmqSidebar();
  RED.sidebar.addTab({
    id: 'tcpmq',
    label: 'TCPMQ',
    name: t('title'),
    iconClass: 'fa fa-microchip',
    content: tab.content[0],
    enableOnEdit: true,
  });
  RED.comms.subscribe('tcpmq/broker/#', (_topic: string, update: Update) => {
    if (update && update.id) tab.apply(update);
  });
  // Updates are sent only while an editor says, every few seconds, that its sidebar is open.
  const watch = () => $.ajax({ url: 'tcpmq/watch', method: 'POST' });
  watch();
  setInterval(watch, WATCH_EVERY_MS);
  setInterval(() => tab.tick(), 1000);
  tab.load();
}

RED.plugins.registerPlugin('tcpmq-sidebar', plugin);
