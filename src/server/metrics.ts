/**
 * Server metrics in the Prometheus text exposition format (which OpenMetrics
 * scrapers also read), and the small HTTP endpoint that serves them with
 * `/healthz`.
 *
 * Label values are a fixed, small set (alert names, drop reasons): never a
 * peer address or an identity, so the series count stays bounded.
 *
 * @module
 */

type Labels = Readonly<Record<string, string>>;

interface Family {
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
}

/** Upper bounds of the handshake duration histogram, seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The metric families the server exports. */
export const FAMILIES = {
  dtls_datagrams_received_total: { help: "UDP datagrams received", type: "counter" },
  dtls_bytes_received_total: { help: "UDP payload bytes received", type: "counter" },
  dtls_datagrams_sent_total: { help: "UDP datagrams sent", type: "counter" },
  dtls_bytes_sent_total: { help: "UDP payload bytes sent", type: "counter" },
  dtls_app_records_received_total: { help: "Application data records decrypted", type: "counter" },
  dtls_app_records_sent_total: { help: "Application data records sent", type: "counter" },
  dtls_hello_verify_requests_total: {
    help: "HelloVerifyRequests sent (no state kept)",
    type: "counter",
  },
  dtls_hello_retry_requests_total: {
    help: "DTLS 1.3 HelloRetryRequests sent with a cookie (no state kept)",
    type: "counter",
  },
  dtls_key_updates_total: {
    help: "DTLS 1.3 KeyUpdates that took effect, by direction (received, sent)",
    type: "counter",
  },
  dtls_cookie_failures_total: {
    help: "ClientHellos whose cookie did not verify, by reason",
    type: "counter",
  },
  dtls_handshakes_started_total: {
    help: "Handshakes started after a verified cookie",
    type: "counter",
  },
  dtls_handshakes_completed_total: { help: "Handshakes completed", type: "counter" },
  dtls_handshakes_failed_total: { help: "Handshakes that failed, by reason", type: "counter" },
  dtls_full_handshakes_total: { help: "Handshakes completed in full", type: "counter" },
  dtls_resumptions_total: {
    help: "Abbreviated handshakes completed, by how the session was found (ticket, session_id)",
    type: "counter",
  },
  dtls_tickets_refused_total: {
    help: "Session tickets offered but not resumed, by reason",
    type: "counter",
  },
  dtls_psk_lookups_total: {
    help: "Asynchronous key store lookups, by result (ok, unknown, error, busy)",
    type: "counter",
  },
  dtls_cid_rebinds_total: {
    help: "Peers with a Connection ID that moved to a new address (RFC 9146)",
    type: "counter",
  },
  dtls_session_cache_entries: {
    help: "Sessions held for resumption by session ID",
    type: "gauge",
  },
  dtls_handshake_duration_seconds: {
    help: "Time from verified cookie to Finished",
    type: "histogram",
  },
  dtls_retransmissions_total: { help: "Flights retransmitted, by cause", type: "counter" },
  dtls_datagrams_dropped_total: {
    help: "Datagrams dropped before any connection, by reason",
    type: "counter",
  },
  dtls_records_dropped_total: {
    help: "Records dropped by connections, by reason",
    type: "counter",
  },
  dtls_connections: { help: "Connections held (established and half-open)", type: "gauge" },
  dtls_connections_half_open: { help: "Connections still in their handshake", type: "gauge" },
  process_resident_memory_bytes: { help: "Resident memory of the process, bytes", type: "gauge" },
  dtls_heap_used_bytes: {
    help: "JavaScript heap in use plus memory of its buffers (V8 heapUsed + external), bytes",
    type: "gauge",
  },
  dtls_psk_reloads_total: { help: "Key file reloads, by result", type: "counter" },
  dtls_ticket_key_reloads_total: {
    help: "Session ticket key (--ticket-key-file) reloads, by result",
    type: "counter",
  },
  dtls_certificate_reloads_total: {
    help: "Certificate (--cert, --key) reloads, by result",
    type: "counter",
  },
  dtls_client_auth_reloads_total: {
    help: "Client authentication (--client-ca, --client-keys) reloads, by result",
    type: "counter",
  },
  dtls_certificate_expiry_timestamp_seconds: {
    help: "When the server's certificate expires (notAfter), seconds since the epoch",
    type: "gauge",
  },
  dtls_internal_errors_total: {
    help: "Internal errors (bugs, throwing handlers or logging), by where they were caught",
    type: "counter",
  },
  dtls_stateless_alerts_total: {
    help: "Fatal alerts sent without keeping state (e.g. protocol_version), by description",
    type: "counter",
  },
  dtls_socket_receive_drops_total: {
    help: "Datagrams the kernel dropped for a full socket receive buffer (--io libc only)",
    type: "counter",
  },
} as const satisfies Record<string, Family>;

/** A metric family name. */
export type MetricName = keyof typeof FAMILIES;

function labelKey(labels: Labels | undefined): string {
  if (labels === undefined) return "";
  const parts = Object.keys(labels).sort().map((k) => `${k}="${escape(labels[k]!)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function escape(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** One series of a counter, held by a hot path so that adding needs no lookup. */
export interface Counter {
  /** Adds `by` (default 1). */
  add(by?: number): void;
}

/** A series' value, shared by the table and any {@link Counter} handle on it. */
class Cell implements Counter {
  value = 0;

  add(by = 1): void {
    this.value += by;
  }
}

/** Counters, gauges and one histogram, rendered on demand. */
export class Metrics {
  readonly #values = new Map<MetricName, Map<string, Cell>>();
  readonly #gauges = new Map<MetricName, () => number>();
  readonly #buckets = new Array<number>(DURATION_BUCKETS.length).fill(0);
  #durationSum = 0;
  #durationCount = 0;

  /** Adds `by` to a counter. */
  inc(name: MetricName, labels?: Labels, by = 1): void {
    this.#cell(name, labels).value += by;
  }

  /**
   * A handle on one series of a counter (created at zero), for code that
   * counts once per datagram: `add()` is a field update, with no name or
   * label lookup.
   */
  counter(name: MetricName, labels?: Labels): Counter {
    return this.#cell(name, labels);
  }

  #cell(name: MetricName, labels: Labels | undefined): Cell {
    let series = this.#values.get(name);
    if (series === undefined) this.#values.set(name, series = new Map());
    const key = labelKey(labels);
    let cell = series.get(key);
    if (cell === undefined) series.set(key, cell = new Cell());
    return cell;
  }

  /** A counter's current value (tests). */
  value(name: MetricName, labels?: Labels): number {
    if (this.#gauges.has(name)) return this.#gauges.get(name)!();
    return this.#values.get(name)?.get(labelKey(labels))?.value ?? 0;
  }

  /** A gauge read at scrape time. */
  gauge(name: MetricName, read: () => number): void {
    this.#gauges.set(name, read);
  }

  /** Records one handshake duration, seconds. */
  observeHandshake(seconds: number): void {
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]!) this.#buckets[i]!++;
    }
    this.#durationSum += seconds;
    this.#durationCount++;
  }

  /** The Prometheus text format. */
  render(): string {
    const lines: string[] = [];
    for (const [name, family] of Object.entries(FAMILIES) as [MetricName, Family][]) {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`);
      if (family.type === "histogram") {
        DURATION_BUCKETS.forEach((le, i) =>
          lines.push(`${name}_bucket{le="${le}"} ${this.#buckets[i]}`)
        );
        lines.push(
          `${name}_bucket{le="+Inf"} ${this.#durationCount}`,
          `${name}_sum ${this.#durationSum}`,
          `${name}_count ${this.#durationCount}`,
        );
        continue;
      }
      const gauge = this.#gauges.get(name);
      if (gauge !== undefined) {
        lines.push(`${name} ${gauge()}`);
        continue;
      }
      const series = this.#values.get(name);
      if (series === undefined || series.size === 0) {
        if (!FAMILY_HAS_LABELS.has(name) && !FAMILY_OPTIONAL.has(name)) lines.push(`${name} 0`);
        continue;
      }
      for (const [key, cell] of series) lines.push(`${name}${key} ${cell.value}`);
    }
    return lines.join("\n") + "\n";
  }
}

/** Families reported only per label; with no series yet they print no sample. */
const FAMILY_HAS_LABELS = new Set<MetricName>([
  "dtls_cookie_failures_total",
  "dtls_handshakes_failed_total",
  "dtls_retransmissions_total",
  "dtls_datagrams_dropped_total",
  "dtls_records_dropped_total",
  "dtls_psk_reloads_total",
  "dtls_resumptions_total",
  "dtls_tickets_refused_total",
  "dtls_ticket_key_reloads_total",
  "dtls_psk_lookups_total",
]);

/** Families with no sample unless their source exists (a zero would claim what is not known). */
const FAMILY_OPTIONAL = new Set<MetricName>(["dtls_socket_receive_drops_total"]);

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The bound address. */
  readonly address: { hostname: string; port: number };
  /** Stops serving. */
  shutdown(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text) and `/healthz` (200 while `healthy()`)
 * with `Deno.serve`.
 */
export function serveMetrics(
  metrics: Metrics,
  options: { hostname: string; port: number; healthy: () => boolean },
): Promise<MetricsServer> {
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      onListen: (addr) => {
        resolve({
          address: { hostname: addr.hostname, port: addr.port },
          shutdown: () => server.shutdown(),
        });
      },
    }, (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/metrics") {
        return new Response(metrics.render(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      if (path === "/healthz") {
        return options.healthy()
          ? new Response("ok\n")
          : new Response("not listening\n", { status: 503 });
      }
      return new Response("not found\n", { status: 404 });
    });
  });
}
