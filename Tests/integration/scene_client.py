"""A socket client that holds a scene the way the overlay page does: `scene.full` replaces it, `scene.patch` is applied
when it holds the patch's base version (anything else is a protocol failure the tests report), and on reconnect it
sends the version and epoch it holds (`?since=&epoch=`) to get exactly what it missed."""
import json
import time

from websockets.sync.client import connect


def apply_patch(scene, message):
    """The scene after `message` (a `scene.patch`) is applied to `scene` (which must be at its base version)."""
    patch = message["patch"]
    upserted = {element["id"]: element for element in patch["upsert"]}
    removed = set(patch["remove"])
    current = [element for element in scene["elements"] if element["id"] not in removed]
    by_id = {element["id"]: element for element in current}
    by_id.update(upserted)
    if patch.get("order") is not None:
        elements = [by_id[element_id] for element_id in patch["order"]]
    else:
        elements = [upserted.get(element["id"], element) for element in current]
        known = {element["id"] for element in current}
        elements += [element for element in patch["upsert"] if element["id"] not in known]
    updated = dict(scene)
    updated.update({"elements": elements, "width": patch["width"], "height": patch["height"], "updated_at": patch["updated_at"],
                    "_version": message["version"]})
    return updated


class SceneClient:
    """One overlay (or panel) socket; `versions` lists every version it received, in order."""

    def __init__(self, base_ws_url, path="/ws/overlay", query="", patches=True):
        self.base = base_ws_url
        self.path = path
        self.query = query
        self.patches = patches
        self.scene = None
        self.version = 0
        self.epoch = ""
        self.versions = []
        self.kinds = []
        self.bytes = 0
        self.resumed = []
        self.ws = None

    def url(self, resume):
        parts = [self.query] if self.query else []
        if self.patches:
            parts.append("patches=1")
        if resume and self.version:
            parts.append(f"since={self.version}&epoch={self.epoch}")
        return f"{self.base}{self.path}?{'&'.join(parts)}"

    def open(self, resume=False, base=None, **kwargs):
        if base:
            self.base = base
        # Held open across calls (a reader thread, reconnects): entered by hand instead of a `with` block.
        self.ws = connect(self.url(resume), open_timeout=10, **kwargs).__enter__()
        return self

    def close(self):
        if self.ws:
            self.ws.close()

    def handle(self, raw):
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "scene.full":
            if message.get("active") is False:
                return message
            self.bytes += len(raw)
            self.scene = message["scene"]
        elif kind == "scene.patch":
            self.bytes += len(raw)
            assert self.scene is not None and message["base_version"] == self.version, (
                f"patch on base {message['base_version']} but the client holds {self.version}")
            self.scene = apply_patch(self.scene, message)
        elif kind == "scene.resumed":
            self.resumed.append(message)
            return message
        else:
            return message
        assert message["version"] > self.version or message.get("epoch") != self.epoch, (
            f"version {message['version']} after {self.version}: not increasing")
        self.version = message["version"]
        self.epoch = message.get("epoch", "")
        self.versions.append(self.version)
        self.kinds.append(kind)
        return message

    def pump(self, until_version=None, timeout=10.0, until=None):
        """Reads frames until the client holds `until_version` (or `until(message)` is true)."""
        deadline = time.monotonic() + timeout
        while True:
            if until_version is not None and self.version >= until_version:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"client at version {self.version}, wanted {until_version}, after {timeout}s")
            message = self.handle(self.ws.recv(timeout=left))
            if until and until(message):
                return message
