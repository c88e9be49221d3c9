/**
 * tcpmq-sidebar: the editor's TCPMQ tab as a Node-RED plugin (its editor part
 * is tcpmq-sidebar.html, its texts locales/<lang>/tcpmq-sidebar.json). Here:
 * the admin endpoints it reads and writes through. The broker nodes publish
 * its live updates themselves (sidebar-api.ts).
 */

import type { NodeAPI } from 'node-red';
import { registerSidebarApi } from './sidebar-api';

export = function (RED: NodeAPI) {
  RED.plugins.registerPlugin('tcpmq-sidebar', { type: 'tcpmq-sidebar' });
  registerSidebarApi(RED);
};
