/**
 * tcpmq-broker: the config node that owns a TCPMQ broker (mode "server"), this
 * Node-RED's device on a broker hosted elsewhere (mode "client"), or the
 * replica of a fleet of gateways through MQTT (mode "fleet"). In, out and
 * status nodes register with it (as users of Node-RED's MQTT broker node do);
 * it starts when the first one registers and fans its status out to all.
 *
 * What it runs outlives the node instance: a deploy that closes the node and
 * creates it again hands the running broker, client or replica (socket,
 * connections, mailboxes, devices) to the new instance (see running-brokers.ts).
 */

import type { Node, NodeAPI } from 'node-red';
import { TcpmqBroker } from '../broker';
import { TcpmqClient } from '../client/client';
import { errorText } from '../events/safe-emitter';
import { clientEndpoint } from './broker-client';
import { fleetEndpoint } from './broker-fleet';
import { serverEndpoint } from './broker-server';
import type { BrokerConfigNode, BrokerDef } from './broker-user';
import type { Endpoint } from './endpoint';
import { runningBrokers } from './running-brokers';
import { joinSidebar, publishRemoved } from './sidebar-api';

export = function (RED: NodeAPI) {
  const running = runningBrokers(RED.events);

  function TcpmqBrokerNode(this: BrokerConfigNode, config: BrokerDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const users = new Map<string, Node>();
    let closed = false;
    /** Set once the role below exists; a role may report a status while it is being made. */
    let endpoint: Endpoint | undefined = undefined;
    const showStatus = () => {
      if (!endpoint || users.size === 0) return;
      const status = endpoint.status();
      for (const user of users.values()) user.status(status);
    };
    const mode = config.mode === 'client' || config.mode === 'fleet' ? config.mode : 'server';
    // What the previous instance of this node ran, if a deploy just closed it.
    const kept = running.claim(node.id);
    const keptBroker = kept instanceof TcpmqBroker && mode === 'server' ? kept : undefined;
    const keptClient = kept instanceof TcpmqClient && mode === 'client' ? kept : undefined;
    // A fleet's replica is a broker that never listened.
    const keptReplica =
      kept instanceof TcpmqBroker && mode === 'fleet' && kept.status.state === 'stopped' ? kept : undefined;
    // Switched to another mode: the old one goes.
    if (kept && !keptBroker && !keptClient && !keptReplica) kept.stop().catch(() => undefined);
    const later = (apply: () => void) => running.afterStart(() => closed || apply());
    const context = { RED, node, config, showStatus, later };
    const role =
      mode === 'client'
        ? clientEndpoint(context, keptClient)
        : mode === 'fleet'
          ? fleetEndpoint(context, keptReplica)
          : serverEndpoint(context, keptBroker);
    const current = role.endpoint;
    endpoint = current;
    node.endpoint = current;
    const runtime = 'broker' in role ? (node.broker = role.broker) : (node.client = role.client);
    // Listed in the editor's sidebar (the tcpmq-sidebar plugin).
    const leaveSidebar = joinSidebar(RED, node);

    node.register = (user: Node) => {
      users.set(user.id, user);
      user.status(current.status());
      if (!closed) current.start();
    };

    // Listening goes on when the last user leaves: field devices never reconnect,
    // so a redeploy of one in/out node must not drop their connections.
    node.deregister = (user: Node, done: () => void) => {
      users.delete(user.id);
      done();
    };

    // Two declared parameters: the runtime passes `removed` (deleted by the deploy) and waits for `done`.
    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      leaveSidebar();
      const release = () => runtime.stop().then(() => publishRemoved(RED, node.id));
      current
        .close(removed === true)
        .catch((err: unknown) => node.warn(errorText(err)))
        .then(() => (removed ? release() : running.park(node.id, runtime, release)))
        .then(
          () => done(),
          () => done(),
        );
    });
  }

  RED.nodes.registerType('tcpmq-broker', TcpmqBrokerNode);
};
