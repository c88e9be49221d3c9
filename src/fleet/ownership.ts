/**
 * Who writes which retained mailbox topic (docs/PROTOCOL.md, sharing): one
 * writer per topic. An id belongs to the gateway whose write this member
 * holds for it (a board's gateway for its news); an id nobody holds, or whose
 * gateway has said it is offline, is claimed by the gateway with the least
 * name among those online. Every member decides this alike from the same
 * retained messages, so one gateway takes a `/set` and the others wait for
 * its retained mailbox message.
 */

import type { DeviceId } from '../protocol/request';
import type { Mailboxes } from '../store/mailboxes';

/** Gateways remembered at most: their states are retained topics anyone could publish. */
const MAX_GATEWAYS = 1000;
/**
 * A gateway's state is refreshed every 30 s: one older than this is a gateway gone without a will (a crashed
 * Node-RED sharing its boards has none), which must not keep the ids it would claim.
 */
const STATE_STALE_MS = 95_000;

export class Ownership {
  /** The gateways known from their retained state: online or not, and when that was said (if it says). */
  private readonly gateways = new Map<string, { online: boolean; at?: number }>();

  /**
   * @param self this member's gateway name
   * @param attached a member with no boards (Node-RED in fleet mode): it never owns an id
   */
  constructor(
    private readonly self: string,
    private readonly attached: boolean,
    private readonly mailboxes: Mailboxes,
  ) {}

  /** A gateway's retained state: online, or gone (its will, its stop). */
  gatewayState(gateway: string, online: boolean, at?: number): void {
    if (!this.gateways.has(gateway) && this.gateways.size >= MAX_GATEWAYS) return;
    this.gateways.set(gateway, { online, at: typeof at === 'number' ? at : undefined });
  }

  /** Whether `gateway` says it is serving, lately. */
  isOnline(gateway: string, now = Date.now()): boolean {
    const state = this.gateways.get(gateway);
    return state !== undefined && state.online && (state.at === undefined || now - state.at < STATE_STALE_MS);
  }

  /** The gateway that writes mailbox `id` on MQTT and takes its `/set`, or undefined if no gateway is online. */
  ownerOf(id: DeviceId, now = Date.now()): string | undefined {
    const held = this.mailboxes.read(id, now);
    if (held) {
      const gateway = held.gateway ?? (this.attached ? undefined : this.self);
      if (gateway !== undefined && (gateway === this.self || this.isOnline(gateway))) return gateway;
    }
    return this.claimant();
  }

  /** Whether this member writes mailbox `id`. */
  owns(id: DeviceId, now = Date.now()): boolean {
    return !this.attached && this.ownerOf(id, now) === this.self;
  }

  /** The gateway that takes an id nobody holds: the least name among the online gateways. */
  private claimant(): string | undefined {
    let least = this.attached ? undefined : this.self;
    const now = Date.now();
    for (const gateway of this.gateways.keys()) {
      if (this.isOnline(gateway, now) && (least === undefined || gateway < least)) least = gateway;
    }
    return least;
  }
}
