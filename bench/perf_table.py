"""RESULT lines of bench/fanout (one per overlay count, plus rss_after_disconnect_kib) as a Markdown table."""
import sys

print("| overlays | saves/s | save→receive p50 | p99 | frames delivered | engine CPU per delivery | of which user "
      "| RSS idle engine | RSS per connected socket | RSS after disconnect |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in sys.stdin:
    if not line.startswith("RESULT"):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    clients, delivered = int(f["clients"]), int(f["delivered"])
    before, after = int(f["rss_before_kib"]) / 1024, int(f["rss_after_disconnect_kib"]) / 1024
    per_socket = float(f["rss_per_socket_bytes"]) / 1024
    print(f"| {clients:,} | {float(f['saves_per_s']):.1f} | {f['p50_ms']} ms | {f['p99_ms']} ms | {delivered:,} "
          f"| {f['cpu_us_per_delivery']} µs | {f.get('user_us_per_delivery', '?')} µs | {before:.1f} MiB | {per_socket:.1f} KiB | {after:.1f} MiB |")
