/**
 * The broker and the client emit from socket and timer callbacks, where an
 * exception thrown by a listener would end the process (and every flow in
 * Node-RED). Their events go through safeEmit: a throwing listener becomes a
 * 'warning' event. They never emit 'error', which throws without a listener.
 */

import { EventEmitter } from 'node:events';

export class SafeEmitter extends EventEmitter {
  constructor() {
    super();
    // Every in, out and status node of a flow listens: no "possible leak" warning.
    this.setMaxListeners(0);
  }

  protected safeEmit(event: string, arg: unknown): void {
    try {
      this.emit(event, arg);
    } catch (err) {
      this.warn(`a '${event}' listener failed: ${describe(err)}`);
    }
  }

  protected warn(message: string): void {
    try {
      this.emit('warning', message);
    } catch {
      // Nothing more can be done for a failing warning listener.
    }
  }
}

/** An error's message, or the thrown value as text. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
