/** Which connection a request or a line came from: what the broker, the device table and the fleet say of it. */

export interface ConnectionInfo {
  connectionId: number;
  remoteAddress: string;
  remotePort: number;
}

/** `address:port`: the name of a connection, and of a plain-text board (which has no id). */
export function connectionName({ remoteAddress, remotePort }: { remoteAddress: string; remotePort: number }): string {
  return `${remoteAddress}:${remotePort}`;
}
