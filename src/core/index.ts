/** The TCPMQ protocol core, usable without Node-RED. */
export * from './broker';
export * from './snapshot';
export * from './client';
export * from './devices';
export * from './frame-reader';
export * from './mailboxes';
export * from './printable';
export * from './reply';
export * from './request';
