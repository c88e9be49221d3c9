/** tcpmq-in: every request a device sends (and every line of plain text) becomes a flow message. */

import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { RawEvent } from '../broker';
import { connectionName } from '../protocol/connection-info';
import { isDecimal } from '../protocol/decimal';
import { brokerGateway, describeDevice, isAttached, useBroker } from './broker-user';
import { deviceFilter } from './config';
import type { NewsEvent } from './endpoint';
import type { NewsMessage, RawMessage } from './messages';

interface TcpmqInDef extends NodeDef {
  broker: string;
  device: string;
  numbers?: boolean;
  binary?: boolean;
  /** Devices on other gateways too (sharing). */
  remote?: boolean;
}

export = function (RED: NodeAPI) {
  function TcpmqInNode(this: Node, config: TcpmqInDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const wanted = deviceFilter(config.device);
    const numbers = config.numbers !== false;
    const binary = config.binary === true;
    const asNumber = (payload: unknown) => (numbers && isDecimal(payload) ? Number(payload) : payload);

    // Attached to a fleet, every gateway's devices are this broker's own.
    const remote = config.remote === true || isAttached(RED, config.broker);
    const ownGateway = brokerGateway(RED, config.broker);
    useBroker(RED, node, config.broker, {
      news(event: NewsEvent) {
        // A device of another gateway (sharing) only for a node that asked for them.
        if (!wanted(event.from) || (event.gateway !== undefined && !remote)) return;
        const msg: NewsMessage = { topic: event.from, payload: asNumber(event.payload) };
        // A board of the device list: its name and unit.
        Object.assign(msg, describeDevice(RED, config.broker, event.from));
        // Where the device spoke from, when it spoke to this broker.
        if (event.remoteAddress !== undefined) {
          const { want, remoteAddress, remotePort, connectionId } = event;
          Object.assign(msg, { want, remoteAddress, remotePort, connectionId });
        }
        const gateway = event.gateway ?? ownGateway;
        if (gateway !== undefined) msg.gateway = gateway;
        node.send(msg);
      },
      raw(event: RawEvent & { gateway?: string }) {
        const topic = connectionName(event);
        // Bytes that are not text only reach flows that asked for them (binary).
        if (!wanted(topic) || (!event.isText && !binary)) return;
        const msg: RawMessage = {
          topic,
          payload: event.isText ? event.bytes.toString('utf8') : Buffer.from(event.bytes),
          raw: true,
          remoteAddress: event.remoteAddress,
          remotePort: event.remotePort,
          connectionId: event.connectionId,
          // Fleet mode: the gateway holding the connection, where a reply must go.
          ...(event.gateway === undefined ? {} : { gateway: event.gateway }),
        };
        node.send(msg);
      },
    });
  }

  RED.nodes.registerType('tcpmq-in', TcpmqInNode);
};
