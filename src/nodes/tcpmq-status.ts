/** tcpmq-status: devices coming online and going offline become flow messages; any input asks for the device table. */

import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { RejectEvent } from '../broker';
import { connectionName } from '../protocol/connection-info';
import { brokerGateway, describeDevice, isAttached, useBroker } from './broker-user';
import type { ErrorMessage, LinkMessage, PresenceMessage, TableMessage } from './messages';
import { deviceFilter } from './config';
import { limitedWarnings } from '../events/rate-limit';

interface TcpmqStatusDef extends NodeDef {
  broker: string;
  device: string;
  /** Devices on other gateways too (sharing). */
  remote?: boolean;
}

export = function (RED: NodeAPI) {
  function TcpmqStatusNode(this: Node, config: TcpmqStatusDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const wanted = deviceFilter(config.device);
    // Attached to a fleet, every gateway's devices are this broker's own.
    const remote = config.remote === true || isAttached(RED, config.broker);
    const ownGateway = brokerGateway(RED, config.broker);
    const report = (device: { id: string; gateway?: string }, payload: 'online' | 'offline') => {
      // A device of another gateway (sharing) only for a node that asked for them.
      if (!wanted(device.id) || (device.gateway !== undefined && !remote)) return;
      const msg: PresenceMessage = { topic: device.id, payload, device };
      Object.assign(msg, describeDevice(RED, config.broker, device.id));
      const gateway = device.gateway ?? ownGateway;
      if (gateway !== undefined) msg.gateway = gateway;
      node.send(msg);
    };
    // A flood of errors must not flood the flow: as many a minute as a broker logs warnings.
    const sendError = limitedWarnings(
      (event: RejectEvent) =>
        node.send({
          topic: event.deviceId ?? connectionName(event),
          payload: 'error',
          error: event.reason,
          kind: event.kind,
          remoteAddress: event.remoteAddress,
          remotePort: event.remotePort,
        } satisfies ErrorMessage),
      (count) =>
        node.send({
          topic: 'errors',
          payload: 'error',
          error: RED._('tcpmq-status.errors.dropped', { count }),
          kind: 'dropped',
        } satisfies ErrorMessage),
    );
    // Errors come from any connection, whatever the device filter: abuse has no id.
    const reportError = (event: RejectEvent) => {
      if (event.kind === 'idle') return; // closing a silent connection is routine, not an error
      sendError(event);
    };
    const endpoint = useBroker(RED, node, config.broker, {
      online: (device) => report(device, 'online'),
      offline: (device) => report(device, 'offline'),
      rejected: reportError,
      // Client mode: the remote broker as a whole comes and goes.
      link: (link) => node.send({ ...link } satisfies LinkMessage),
    });

    node.on('input', (msg, send, done) => {
      if (!endpoint) {
        done(new Error(RED._('tcpmq-status.errors.no-broker')));
        return;
      }
      const { devices, connections, counters } = endpoint.table();
      // This gateway's devices, and the other gateways' too only if asked for.
      const rows = remote ? devices : devices.filter((row) => [undefined, ownGateway].includes(row.gateway));
      const reply: TableMessage = Object.assign(msg, { payload: rows, counters }, connections ? { connections } : {});
      send(reply);
      done();
    });
  }

  RED.nodes.registerType('tcpmq-status', TcpmqStatusNode);
};
