/** The TCPMQ protocol core, usable without Node-RED. */
export * from './broker';
export * from './protocol/connection-info';
export * from './store/snapshot';
export * from './client/client';
export * from './store/devices';
export * from './protocol/frame-reader';
export * from './store/mailboxes';
export * from './protocol/printable';
export * from './protocol/reply';
export * from './protocol/request';
