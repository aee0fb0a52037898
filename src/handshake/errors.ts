/**
 * Protocol errors and the one table that turns a failure into an alert.
 *
 * Three tiers (see ARCHITECTURE.md): record noise is dropped and counted, never
 * thrown; a {@link ProtocolError} is fatal and becomes exactly one alert; any
 * other exception is a bug, reported as internal_error.
 *
 * @module
 */

import { DecodeError } from "../codec/reader.ts";
import { AlertDescription, alertName } from "./messages.ts";

/** A fatal protocol violation, carrying the alert the RFC names for it. */
export class ProtocolError extends Error {
  /** The AlertDescription to send. */
  readonly alert: number;
  constructor(alert: number, message: string) {
    super(message);
    this.name = "ProtocolError";
    this.alert = alert;
  }
}

/** The alert for any exception thrown while handling a peer's message. */
export function alertFor(error: unknown): { alert: number; internal: boolean } {
  if (error instanceof ProtocolError) return { alert: error.alert, internal: false };
  if (error instanceof DecodeError) return { alert: AlertDescription.DecodeError, internal: false };
  return { alert: AlertDescription.InternalError, internal: true };
}

/** The text of anything thrown. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How a failure ends a connection: the alert to send and what its `closed` event says. */
export interface Failure {
  readonly alert: number;
  readonly reason: string;
  readonly cause: "internal" | "protocol_error";
  readonly closingAlert: { readonly direction: "sent"; readonly description: string };
  /** "engine" for a bug of ours (not the peer's doing). */
  readonly internal: "engine" | undefined;
}

/** The {@link Failure} for an exception thrown while handling a peer's input. */
export function failureOf(error: unknown): Failure {
  const { alert, internal } = alertFor(error);
  const message = errorText(error);
  return {
    alert,
    reason: internal ? `internal error: ${message}` : message,
    cause: internal ? "internal" : "protocol_error",
    closingAlert: { direction: "sent", description: alertName(alert) },
    internal: internal ? "engine" : undefined,
  };
}
