#!/usr/bin/env python3
"""PluginAPI's API check: what plugins compile against, compared with the committed baseline.

PluginAPI is not built with library evolution, so a plugin and the engine must agree on every public declaration
and on the stored properties of public types; the loader enforces that through PluginAPIVersion. This check makes
a change to those declarations without a version bump fail CI.

  scripts/api-check.py GRAPH_DIR            compare with Sources/PluginAPI/API.txt (exit 1 on a difference)
  scripts/api-check.py GRAPH_DIR --write    rewrite the baseline (refused when the API changed and the version did not)

GRAPH_DIR holds the symbol graphs of `swift package --package-path Sources/PluginAPI dump-symbol-graph
--minimum-access-level private` (make api-check runs both steps)."""
import difflib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASELINE = ROOT / "Sources" / "PluginAPI" / "API.txt"
PLUGIN_SWIFT = ROOT / "Sources" / "PluginAPI" / "Plugin.swift"


def current_version():
    found = re.search(r"PluginAPIVersion\(major: (\d+), minor: (\d+)\) \}", PLUGIN_SWIFT.read_text())
    if not found:
        sys.exit(f"api-check: cannot find PluginAPIVersion.current in {PLUGIN_SWIFT}")
    return f"{found.group(1)}.{found.group(2)}"


def api_lines(graph_dir):
    symbols = {}
    parents = {}
    for path in sorted(pathlib.Path(graph_dir).glob("PluginAPI*.symbols.json")):
        graph = json.loads(path.read_text())
        for symbol in graph["symbols"]:
            symbols[symbol["identifier"]["precise"]] = symbol
        for relation in graph["relationships"]:
            if relation["kind"] == "memberOf":
                parents[relation["source"]] = relation["target"]
    if not symbols:
        sys.exit(f"api-check: no PluginAPI symbol graph in {graph_dir}")
    lines = set()
    for precise, symbol in symbols.items():
        kind = symbol["kind"]["identifier"].removeprefix("swift.")
        access = symbol["accessLevel"]
        parent = symbols.get(parents.get(precise, ""))
        public = access in ("public", "open")
        # Any property of a public type: its stored properties are its layout, whatever their access.
        layout = kind == "property" and parent is not None and parent["accessLevel"] in ("public", "open")
        if not (public or layout):
            continue
        declaration = "".join(fragment["spelling"] for fragment in symbol.get("declarationFragments", []))
        declaration = re.sub(r"\s+", " ", declaration).strip()
        spi = " [spi]" if symbol.get("spi") else ""
        lines.add(f"{'.'.join(symbol['pathComponents'])} | {kind}{spi} | {declaration}")
    return sorted(lines)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lines = api_lines(sys.argv[1])
    version = current_version()
    text = f"# PluginAPI {version}: every public declaration and every property of a public type (scripts/api-check.py)\n" + "\n".join(lines) + "\n"
    old = BASELINE.read_text() if BASELINE.exists() else ""
    old_version = (re.match(r"# PluginAPI (\d+\.\d+)", old) or [None, None])[1]
    old_lines = old.splitlines()[1:]
    changed = old_lines != lines
    if "--write" in sys.argv[2:]:
        if changed and old_version == version:
            sys.exit(f"api-check: the API changed but PluginAPIVersion is still {version}; bump it in {PLUGIN_SWIFT.relative_to(ROOT)} first")
        BASELINE.write_text(text)
        print(f"api-check: wrote {BASELINE.relative_to(ROOT)} ({len(lines)} declarations, PluginAPI {version})")
        return
    if not changed and old_version == version:
        print(f"api-check: PluginAPI {version} matches {BASELINE.relative_to(ROOT)} ({len(lines)} declarations)")
        return
    diff = "\n".join(difflib.unified_diff(old_lines, lines, "baseline", "now", lineterm="", n=0))
    if changed and old_version == version:
        print(diff)
        sys.exit(f"api-check: PluginAPI's API changed without a version bump: plugins built against {version} would load and break. "
                 f"Bump PluginAPIVersion.current in {PLUGIN_SWIFT.relative_to(ROOT)}, then run `make api-baseline`.")
    print(diff)
    sys.exit(f"api-check: PluginAPI is now {version} but {BASELINE.relative_to(ROOT)} is for {old_version}; run `make api-baseline` and commit it.")


if __name__ == "__main__":
    main()
