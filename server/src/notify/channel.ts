import type { NotificationEvent } from '@db-backup-service/contract';

/** Where a notification goes; the `channel` label of the notification metrics. */
export type ChannelKind = 'webhook' | 'email';

/** One destination of notifications: a webhook URL or the mailbox list. */
export interface NotifyChannel {
  readonly kind: ChannelKind;
  /** Names the destination in logs and errors without its secret (the URL, the SMTP password): `webhook 2 (slack)`, `email`. */
  readonly name: string;
  /**
   * One attempt at delivering `event`. Rejects when it failed, with a message that holds no secret;
   * a DeliveryError with `permanent` set is not retried (e.g. a 404: the hook was deleted).
   * `signal` fires at the attempt's timeout.
   */
  send(event: NotificationEvent, signal: AbortSignal): Promise<void>;
  /** Releases what it holds (an SMTP connection pool) at shutdown. */
  close?(): void;
}

/** A failed delivery attempt; `permanent`: retrying cannot help. */
export class DeliveryError extends Error {
  readonly code = 'DELIVERY_FAILED';
  constructor(
    message: string,
    readonly permanent = false,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DeliveryError';
  }
}
