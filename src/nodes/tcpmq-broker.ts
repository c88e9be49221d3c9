/**
 * tcpmq-broker: the config node that owns a TCPMQ broker (mode "server") or
 * this Node-RED's device on a broker hosted elsewhere (mode "client"). In, out
 * and status nodes register with it (as users of Node-RED's MQTT broker node
 * do); it starts when the first one registers and fans its status out to all.
 */

import type { Node, NodeAPI } from 'node-red';
import { clientEndpoint } from './broker-client';
import { serverEndpoint } from './broker-server';
import type { BrokerConfigNode, BrokerDef } from './broker-user';
import { publishUpdates, registerSidebarApi } from './sidebar-api';

export = function (RED: NodeAPI) {
  /** The deployed broker nodes, for the editor's sidebar. */
  const brokers = new Map<string, BrokerConfigNode>();
  registerSidebarApi(RED, brokers);

  function TcpmqBrokerNode(this: BrokerConfigNode, config: BrokerDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const users = new Map<string, Node>();
    let closed = false;
    const showStatus = () => {
      const status = endpoint.status();
      for (const user of users.values()) user.status(status);
    };
    const endpoint = config.mode === 'client' ? clientEndpoint(RED, node, config, showStatus) : serverEndpoint(RED, node, config, showStatus);
    node.mode = config.mode === 'client' ? 'client' : 'server';
    node.broker = endpoint.broker;
    node.client = endpoint.client;
    brokers.set(node.id, node);
    const stopPublishing = publishUpdates(RED, node);

    node.register = (user: Node) => {
      users.set(user.id, user);
      user.status(endpoint.status());
      if (!closed) endpoint.start();
    };

    // Listening goes on when the last user leaves: field devices never reconnect,
    // so a redeploy of one in/out node must not drop their connections.
    node.deregister = (user: Node, done: () => void) => {
      users.delete(user.id);
      done();
    };

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      brokers.delete(node.id);
      stopPublishing();
      endpoint.stop().then(
        () => done(),
        () => done(),
      );
    });
  }

  RED.nodes.registerType('tcpmq-broker', TcpmqBrokerNode);
};
