/**
 * The TCPMQ tab of the editor's sidebar, a Node-RED plugin: each deployed
 * broker, its devices and plain-text connections, live; write a mailbox or
 * send a line to the one selected. The whole table is read once (GET
 * tcpmq/brokers); after that each update (RED.comms, at most four a second
 * per broker, sent only while a sidebar says it is open) carries the device
 * rows that changed, and only those rows are redrawn.
 */

import type { Device, Connection, Heading, Summary, Update, BrokerView, Selection } from './sidebar-types';

/** Rows listed per broker: the most recently heard; a larger fleet is counted, not listed. */
const SHOWN = 200;
const DEVICE_COLUMNS = ['id', 'address', 'onlineColumn', 'lastSeen', 'lastValue', 'messages'];
const SHARED_DEVICE_COLUMNS = ['id', 'gateway', 'address', 'onlineColumn', 'lastSeen', 'lastValue', 'messages'];
const CONNECTION_COLUMNS = ['address', 'kind', 'since', 'bytes'];

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
function setText(cell: JQuery, text: string): void {
  if (cell.text() !== text) cell.text(text).attr('title', text);
}

function headerRow(columns: string[]): JQuery {
  const row = $('<tr></tr>');
  for (const column of columns) $('<th></th>').addClass(`tcpmq-sidebar-column-${column}`).text(t(column)).appendTo(row);
  return row;
}

function emptyRow(className: string, cells: number): JQuery {
  const row = $('<tr></tr>').addClass(className);
  for (let i = 0; i < cells; i++) $('<td></td>').appendTo(row);
  return row;
}

function fillDeviceRow(row: JQuery, device: Device, shared: boolean): void {
  const cells = row.children('td');
  let i = 0;
  setText(cells.eq(i++), deviceLabel(device));
  if (shared) setText(cells.eq(i++), device.gateway ?? '');
  setText(cells.eq(i++), device.remoteAddress ?? '');
  const online = cells.eq(i++);
  const state = `${device.online ? '● ' : '○ '}${t(device.online ? 'online' : 'offline')}`;
  if (online.text() !== state) {
    online.empty();
    $('<span></span>')
      .addClass(device.online ? 'tcpmq-sidebar-online' : 'tcpmq-sidebar-offline')
      .text(state)
      .appendTo(online);
  }
  // "seen 5 s ago" keeps counting (tick), from the time kept on the cell.
  const seen = cells.eq(i++).addClass('tcpmq-sidebar-ago');
  seen.attr('data-time', device.lastSeen ? String(device.lastSeen) : '');
  setText(seen, device.lastSeen ? ago(device.lastSeen) : '');
  setText(cells.eq(i++), valueText(device));
  setText(cells.eq(i++), device.messages === undefined ? '' : String(device.messages));
}

function connectionAddress(connection: Connection): string {
  return `${connection.remoteAddress}:${connection.remotePort}`;
}

function fillConnectionRow(row: JQuery, connection: Connection): void {
  const cells = row.children('td');
  setText(cells.eq(0), connectionAddress(connection));
  setText(cells.eq(1), connection.kind);
  const since = cells.eq(2).addClass('tcpmq-sidebar-ago').attr('data-time', String(connection.connectedAt));
  setText(since, ago(connection.connectedAt));
  setText(cells.eq(3), `${connection.bytesIn} / ${connection.bytesOut}`);
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

function sidebar(): void {
  const brokers = new Map<string, BrokerView>();
  let selected: Selection | null = null;

  const content = $('<div class="tcpmq-sidebar"></div>');
  const list = $('<div class="tcpmq-sidebar-brokers"></div>').appendTo(content);
  const empty = $('<p class="tcpmq-sidebar-empty"></p>').text(t('empty')).appendTo(list);
  const form = $('<div class="tcpmq-sidebar-form"></div>').hide().appendTo(content);
  const target = $('<div class="tcpmq-sidebar-target"></div>').appendTo(form);
  const input = $('<input type="text" class="tcpmq-sidebar-text">')
    .attr('placeholder', t('placeholder'))
    .appendTo(form);
  const mailboxButton = $('<button type="button" class="red-ui-button tcpmq-sidebar-mailbox"></button>')
    .text(t('writeMailbox'))
    .appendTo(form);
  const sendButton = $('<button type="button" class="red-ui-button tcpmq-sidebar-send"></button>')
    .text(t('sendLine'))
    .appendTo(form);
  const result = $('<div class="tcpmq-sidebar-result"></div>').appendTo(form);

  const keyOfDevice = (device: Device) => `device:${device.id}`;
  const keyOfConnection = (connection: Connection) => `connection:${connection.connectionId}`;
  const isSelected = (brokerId: string, key: string) =>
    selected !== null && selected.brokerId === brokerId && selected.key === key;

  function select(choice: Selection | null): void {
    selected = choice;
    form.toggle(choice !== null);
    if (choice) {
      target.text(
        choice.device !== undefined
          ? t('device', { id: choice.label ?? choice.device })
          : t('connection', { address: choice.address ?? '' }),
      );
      mailboxButton.toggle(choice.device !== undefined);
      result.text('');
    }
    list.find('tr.tcpmq-sidebar-selected').removeClass('tcpmq-sidebar-selected');
    if (choice) {
      const view = brokers.get(choice.brokerId);
      const row = view?.deviceRows.get(choice.key) ?? view?.connectionRows.get(choice.key);
      row?.addClass('tcpmq-sidebar-selected');
    }
  }

  function deviceRow(brokerId: string, device: Device, shared: boolean): JQuery {
    const key = keyOfDevice(device);
    const row = emptyRow('tcpmq-sidebar-device', shared ? 7 : 6).attr('data-device', device.id);
    row.toggleClass('tcpmq-sidebar-selected', isSelected(brokerId, key));
    // The label as it is when clicked (a name may come or go with a deploy).
    row.on('click', () => {
      const current = brokers.get(brokerId)?.devices.get(device.id) ?? device;
      select({ brokerId, key, device: device.id, label: deviceLabel(current) });
    });
    return row;
  }

  function connectionRow(brokerId: string, connection: Connection): JQuery {
    const key = keyOfConnection(connection);
    const row = emptyRow('tcpmq-sidebar-connection', 4).attr('data-connection', String(connection.connectionId));
    row.toggleClass('tcpmq-sidebar-selected', isSelected(brokerId, key));
    const { connectionId } = connection;
    const address = connectionAddress(connection);
    row.on('click', () => select({ brokerId, key, connectionId, address }));
    return row;
  }

  /** A broker's section, empty: its heading and tables are filled by showHeading and showRows. */
  function brokerView(heading: Heading): BrokerView {
    const section = $('<div class="tcpmq-sidebar-broker"></div>').attr('data-broker', heading.id).appendTo(list);
    const view: BrokerView = {
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
    $('<div></div>').text(t('plainText')).appendTo(view.plain);
    $('<table class="tcpmq-sidebar-connections"><thead></thead><tbody></tbody></table>').appendTo(view.plain);
    view.plain.find('thead').append(headerRow(CONNECTION_COLUMNS));
    setColumns(view, !!heading.sharing);
    return view;
  }

  /** The devices table's columns: a gateway column while the broker shares; the rows are made again. */
  function setColumns(view: BrokerView, shared: boolean): void {
    view.shared = shared;
    view.deviceTable
      .children('thead')
      .empty()
      .append(headerRow(shared ? SHARED_DEVICE_COLUMNS : DEVICE_COLUMNS));
    view.deviceTable.children('tbody').empty();
    view.deviceRows.clear();
  }

  function showHeading(view: BrokerView): void {
    const { heading } = view;
    const status = heading.status ?? {};
    const where = `${status.host ?? ''}:${status.port ?? ''}`;
    const connections = heading.connections ?? [];
    let title = heading.name;
    if (!title) {
      if (heading.mode === 'client') title = t('clientOf', { where });
      else if (heading.mode === 'fleet') title = t('fleet');
      else title = t('listeningOn', { where });
    }
    setText(view.title, title);
    setText(
      view.state,
      `${t(`state.${status.state}`)}${status.error ? `: ${status.error}` : ''} · ${t('connections', { count: connections.length })}`,
    );
    const sharing = heading.sharing;
    view.sharing.toggle(!!sharing);
    if (sharing)
      setText(view.sharing, t(sharing.connected ? 'sharingOn' : 'sharingDown', { gateway: sharing.gateway }));
    if (!!sharing !== view.shared) setColumns(view, !!sharing);
  }

  /** The rows: devices most recently heard first (the `changed` ones redrawn), then plain-text connections. */
  function showRows(view: BrokerView, changed: (key: string) => boolean): void {
    const id = view.heading.id;
    const devices = [...view.devices.values()].sort((a, b) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0));
    view.more.toggle(devices.length > SHOWN);
    if (devices.length > SHOWN) setText(view.more, t('more', { shown: SHOWN, count: devices.length }));
    syncRows(
      view.deviceTable.children('tbody'),
      view.deviceRows,
      devices.slice(0, SHOWN),
      keyOfDevice,
      (device) => deviceRow(id, device, view.shared),
      (row, device) => fillDeviceRow(row, device, view.shared),
      changed,
    );
    const plain = (view.heading.connections ?? []).filter((connection) => connection.kind !== 'tcpmq');
    view.plain.toggle(plain.length > 0);
    syncRows(
      view.plain.find('tbody'),
      view.connectionRows,
      plain,
      keyOfConnection,
      (connection) => connectionRow(id, connection),
      fillConnectionRow,
      () => true,
    );
  }

  /** Every broker from the admin API, drawn anew. */
  function load(): void {
    $.getJSON('tcpmq/brokers', (summaries: Summary[]) => {
      for (const view of brokers.values()) view.section.remove();
      brokers.clear();
      for (const { devices = [], ...heading } of summaries) {
        const view = brokerView(heading);
        for (const device of devices) view.devices.set(device.id, device);
        brokers.set(heading.id, view);
        showHeading(view);
        showRows(view, () => true);
      }
      empty.toggle(brokers.size === 0);
      if (selected && !brokers.has(selected.brokerId)) select(null);
    });
  }

  /** Merges an update into its broker and redraws what it changed. */
  function apply(update: Update): void {
    const view = brokers.get(update.id);
    if (update.removed) {
      view?.section.remove();
      brokers.delete(update.id);
      empty.toggle(brokers.size === 0);
      if (selected?.brokerId === update.id) select(null);
      return;
    }
    if (!view) {
      load(); // a broker deployed since: read it whole
      return;
    }
    const { devices = [], removedDevices = [] } = update;
    view.heading = {
      id: update.id,
      name: update.name,
      mode: update.mode,
      status: update.status,
      sharing: update.sharing,
      connections: update.connections,
    };
    for (const device of devices) view.devices.set(device.id, device);
    for (const id of removedDevices) view.devices.delete(id);
    const shared = view.shared;
    showHeading(view);
    const redraw = new Set(devices.map(keyOfDevice));
    showRows(view, view.shared !== shared ? () => true : (key) => redraw.has(key));
  }

  /** "5 s ago" keeps counting. */
  function tick(): void {
    list.find('.tcpmq-sidebar-ago').each(function () {
      const time = Number($(this).attr('data-time'));
      if (time) setText($(this), ago(time));
    });
  }

  function post(path: string, body: object): void {
    if (!selected) return;
    result.text('');
    $.ajax({
      url: `tcpmq/brokers/${encodeURIComponent(selected.brokerId)}/${path}`,
      method: 'POST',
      contentType: 'application/json',
      data: JSON.stringify(body),
    })
      .done(() => result.text(t('done')))
      .fail((xhr) => result.text(xhr.responseJSON?.error ?? xhr.statusText));
  }
  mailboxButton.on('click', () => {
    if (selected) post('mailbox', { device: selected.device, payload: input.val() });
  });
  sendButton.on('click', () => {
    if (!selected) return;
    const text = input.val();
    post(
      'send',
      selected.connectionId !== undefined
        ? { connectionId: selected.connectionId, text }
        : { device: selected.device, text },
    );
  });

  RED.sidebar.addTab({
    id: 'tcpmq',
    label: 'TCPMQ',
    name: t('title'),
    iconClass: 'fa fa-microchip',
    content: content[0],
    enableOnEdit: true,
  });
  RED.comms.subscribe('tcpmq/broker/#', (_topic: string, update: Update) => {
    if (update && update.id) apply(update);
  });
  // Updates are sent only while an editor says, every few seconds, that its sidebar is open.
  const watch = () => $.ajax({ url: 'tcpmq/watch', method: 'POST' });
  watch();
  setInterval(watch, 10000);
  setInterval(tick, 1000);
  load();
}

RED.plugins.registerPlugin('tcpmq-sidebar', plugin);
