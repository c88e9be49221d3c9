/** tcpmq-status: devices coming online and going offline become flow messages; any input asks for the device table. */

import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { DeviceRecord } from '../core/devices';
import { useBroker } from './broker-user';
import { deviceFilter } from './config';

interface TcpmqStatusDef extends NodeDef {
  broker: string;
  device: string;
}

export = function (RED: NodeAPI) {
  function TcpmqStatusNode(this: Node, config: TcpmqStatusDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const wanted = deviceFilter(config.device);
    const report = (device: DeviceRecord) => {
      if (wanted(device.id)) node.send({ topic: device.id, payload: device.online ? 'online' : 'offline', device } as Record<string, unknown>);
    };
    const brokerNode = useBroker(RED, node, config.broker, { online: report, offline: report });

    node.on('input', (msg, send, done) => {
      if (!brokerNode) {
        done(new Error(RED._('tcpmq-status.errors.no-broker')));
        return;
      }
      const reply = msg as typeof msg & Record<string, unknown>;
      reply.payload = brokerNode.broker.deviceTable();
      reply.counters = { ...brokerNode.broker.counters, openConnections: brokerNode.broker.connectionCount };
      send(reply);
      done();
    });
  }

  RED.nodes.registerType('tcpmq-status', TcpmqStatusNode);
};
