/**
 * The broker and the client emit from socket and timer callbacks, where an
 * exception thrown by a listener would end the process (and every flow in
 * Node-RED). Their events go through safeEmit: a throwing listener becomes a
 * 'warning' event. They never emit 'error', which throws without a listener.
 * `Events` maps each event name to what it carries: listeners are typed by it.
 */

import { EventEmitter } from 'node:events';

/** Listeners for some of the events of an emitter whose events are `Events`. */
export type EventListeners<Events> = { [E in keyof Events]?: (arg: Events[E]) => void };

export class SafeEmitter<Events extends { warning: string }> extends EventEmitter {
  constructor() {
    super();
    // Every in, out and status node of a flow listens: no "possible leak" warning.
    this.setMaxListeners(0);
  }

  override on<E extends keyof Events & string>(event: E, listener: (arg: Events[E]) => void): this {
    return super.on(event, listener);
  }

  override off<E extends keyof Events & string>(event: E, listener: (arg: Events[E]) => void): this {
    return super.off(event, listener);
  }

  override once<E extends keyof Events & string>(event: E, listener: (arg: Events[E]) => void): this {
    return super.once(event, listener);
  }

  /** Subscribes `listeners`; returns the function that unsubscribes them all. */
  listen(listeners: EventListeners<Events>): () => void {
    const subscribed: (() => void)[] = [];
    const subscribe = <E extends keyof Events & string>(event: E) => {
      const listener = listeners[event];
      if (!listener) return;
      this.on(event, listener);
      subscribed.push(() => this.off(event, listener));
    };
    for (const event of Object.keys(listeners) as (keyof Events & string)[]) subscribe(event);
    return () => {
      for (const unsubscribe of subscribed) unsubscribe();
    };
  }

  protected safeEmit<E extends keyof Events & string>(event: E, arg: Events[E]): void {
    try {
      this.emit(event, arg);
    } catch (err) {
      this.warn(`a '${event}' listener failed: ${errorText(err)}`);
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
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
