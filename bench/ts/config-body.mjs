// The pushed config of the fan-out, shared by the bench servers.

/** Same document as bench/go/messages.go configBody: collector-like YAML of exactly `size` bytes. */
export function configBody(version, size) {
  let s =
    `# fleet config v${version}\nreceivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n      http:\n        endpoint: 0.0.0.0:4318\n` +
    "  hostmetrics:\n    collection_interval: 30s\n    scrapers:\n      cpu: {}\n      memory: {}\n      disk: {}\n      filesystem: {}\n      network: {}\n      load: {}\n" +
    "processors:\n  batch:\n    send_batch_size: 8192\n    timeout: 5s\n  memory_limiter:\n    check_interval: 1s\n    limit_percentage: 80\n    spike_limit_percentage: 25\n";
  for (let i = 0; s.length < size; i++) {
    const n = String(i).padStart(3, "0");
    s += `  attributes/rule${n}:\n    actions:\n      - key: rule.${n}.v${version}\n        value: "drop-if-matches-pattern-${n}"\n        action: upsert\n`;
  }
  return new TextEncoder().encode(s.slice(0, size));
}
