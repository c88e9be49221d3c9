/** The broker as the rest of the package sees it: the class, its options, its events, its connection table. */
export { TcpmqBroker } from './broker';
export * from './options';
export * from './events';
export type { ConnectionRecord, ConnectionState } from './connection';
export type { ConnectionTarget } from './connections';
