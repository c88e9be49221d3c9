/** tcpmq-status: devices coming online and going offline become flow messages; any input asks for the device table. */

import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { BrokerStatus, RejectEvent } from '../core/broker';
import type { ClientStatus } from '../core/client';
import { useBroker, type BrokerConfigNode } from './broker-user';
import { deviceFilter } from './config';
import { RateLimit } from './rate-limit';

/** Error messages a status node sends each minute at most (a flood must not flood the flow). */
const ERRORS_PER_MINUTE = 20;

interface TcpmqStatusDef extends NodeDef {
  broker: string;
  device: string;
}

export = function (RED: NodeAPI) {
  function TcpmqStatusNode(this: Node, config: TcpmqStatusDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const wanted = deviceFilter(config.device);
    const report = (device: { id: string }, payload: 'online' | 'offline') => {
      if (wanted(device.id)) node.send({ topic: device.id, payload, device } as Record<string, unknown>);
    };
    const errors = new RateLimit(ERRORS_PER_MINUTE);
    // Errors come from any connection, whatever the device filter: abuse has no id.
    const reportError = (event: RejectEvent) => {
      if (event.kind === 'idle') return; // closing a silent connection is routine, not an error
      const now = Date.now();
      const dropped = (count: number) => node.send({ topic: 'errors', payload: 'error', error: RED._('tcpmq-status.errors.dropped', { count }), kind: 'dropped' } as Record<string, unknown>);
      if (!errors.take(now, dropped)) return;
      node.send({
        topic: event.deviceId ?? `${event.remoteAddress}:${event.remotePort}`,
        payload: 'error',
        error: event.reason,
        kind: event.kind,
        remoteAddress: event.remoteAddress,
        remotePort: event.remotePort,
      } as Record<string, unknown>);
    };
    // Client mode: the remote broker as a whole comes and goes.
    let connected = false;
    // Declared before useBroker: a client reports its first state while this node registers.
    let brokerNode: BrokerConfigNode | undefined;
    const reportConnection = (status: ClientStatus) => {
      if ((status.state === 'connected') === connected) return;
      connected = !connected;
      node.send({ topic: `${status.host}:${status.port}`, payload: connected ? 'connected' : 'disconnected', broker: status } as Record<string, unknown>);
    };
    brokerNode = useBroker(RED, node, config.broker, {
      online: (device: { id: string }) => report(device, 'online'),
      offline: (device: { id: string }) => report(device, 'offline'),
      rejected: reportError,
      state: (status: ClientStatus | BrokerStatus) => brokerNode?.mode === 'client' && reportConnection(status as ClientStatus),
    });
    // A node deployed while its client is already connected starts from there.
    connected = brokerNode?.client?.status.state === 'connected';

    node.on('input', (msg, send, done) => {
      if (!brokerNode) {
        done(new Error(RED._('tcpmq-status.errors.no-broker')));
        return;
      }
      const reply = msg as typeof msg & Record<string, unknown>;
      const { broker, client } = brokerNode;
      if (broker) {
        reply.payload = broker.deviceTable();
        reply.connections = broker.connectionTable();
        reply.counters = { ...broker.counters, openConnections: broker.connectionCount };
      } else {
        reply.payload = client!.watchState();
        reply.counters = { ...client!.counters };
      }
      send(reply);
      done();
    });
  }

  RED.nodes.registerType('tcpmq-status', TcpmqStatusNode);
};
