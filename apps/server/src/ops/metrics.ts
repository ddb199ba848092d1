import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RelayMetrics } from "../core/relay.js";

/** Prometheus metrics of one node; a registry per app so tests can run several in one process. */
export class Metrics implements RelayMetrics {
  readonly registry = new Registry();
  private readonly posts = new Counter({
    name: "chatrelay_posts_total",
    help: "Chat posts by outcome (accepted, duplicate, or the error code).",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  private readonly relayed = new Counter({
    name: "chatrelay_relayed_frames_total",
    help: "Chat frames sent to presenter sockets on this node (live, replayed and gap-filled).",
    registers: [this.registry],
  });
  private readonly sockets = new Gauge({
    name: "chatrelay_presenter_sockets",
    help: "Presenter sockets this node currently holds.",
    registers: [this.registry],
  });
  private readonly publish = new Histogram({
    name: "chatrelay_publish_seconds",
    help: "Time to publish one message on the bus.",
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly logCommit = new Histogram({
    name: "chatrelay_log_commit_seconds",
    help: "Time to write and commit one batch of chat log rows.",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly logBatchSize = new Histogram({
    name: "chatrelay_log_batch_rows",
    help: "Rows per chat log batch (group commit).",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
    registers: [this.registry],
  });
  readonly redisUp = new Gauge({
    name: "chatrelay_redis_connected",
    help: "1 while this node's Redis connections are ready, 0 otherwise (absent without Redis).",
    labelNames: ["connection"],
    registers: [this.registry],
  });
  private readonly busReceivedTotal = new Counter({
    name: "chatrelay_bus_received_total",
    help: "Payloads this node received on its rooms' bus subscriptions (with sharded pub/sub: only rooms whose presenters it holds).",
    registers: [this.registry],
  });
  private readonly busRejects = new Counter({
    name: "chatrelay_bus_rejected_total",
    help: "Bus payloads dropped before delivery because they failed validation, by reason.",
    labelNames: ["reason"],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "chatrelay_" });
  }

  post(outcome: string): void {
    this.posts.inc({ outcome });
  }

  delivered(): void {
    this.relayed.inc();
  }

  presenters(delta: number): void {
    this.sockets.inc(delta);
  }

  publishSeconds(seconds: number): void {
    this.publish.observe(seconds);
  }

  busReceived(): void {
    this.busReceivedTotal.inc();
  }

  /** `reason` is one of the bus codec's fixed reasons (bounded label values). */
  busRejected(reason: string): void {
    this.busRejects.inc({ reason });
  }

  logBatch(rows: number, seconds: number): void {
    this.logBatchSize.observe(rows);
    this.logCommit.observe(seconds);
  }
}
