"""A real Janus (Debian's `janus` package) for the SFU tests: started per test on loopback ports, with its own config
folder (only the VideoRoom plugin and the HTTP transport), an API secret, an admin secret and a VideoRoom admin key,
as an unprivileged user (`nobody` when the tests run as root)."""
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from conftest import free_port

JANUS = shutil.which("janus") or "/usr/bin/janus"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


def janus_available():
    return Path(JANUS).exists() and (LIB / "plugins" / "libjanus_videoroom.so").exists()


class JanusServer:
    def __init__(self):
        # Not pytest's tmp_path: that is 0700 under /tmp/pytest-of-root, which `nobody` cannot read.
        self.folder = Path(tempfile.mkdtemp(prefix="onionrp-janus-"))
        self.folder.chmod(0o755)
        self.http_port = free_port()
        self.admin_port = free_port()
        self.api_secret = "api-" + secrets.token_hex(16)
        self.admin_secret = "admin-" + secrets.token_hex(16)
        self.room_admin_key = "rooms-" + secrets.token_hex(16)
        # An RTP/ICE port range of its own, away from the ephemeral ports free_port() hands out.
        base = 20000 + secrets.randbelow(200) * 50
        self.rtp_range = f"{base}-{base + 49}"
        self.proc = None
        self.log_path = self.folder / "janus.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}/janus"

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}/admin"

    def write_config(self):
        for kind, library in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
            (self.folder / kind).mkdir(exist_ok=True)
            target = self.folder / kind / library
            if not target.exists():
                target.symlink_to(LIB / kind / library)
        (self.folder / "none").mkdir(exist_ok=True)
        (self.folder / "janus.jcfg").write_text(f"""
general: {{
  configs_folder = "{self.folder}"
  plugins_folder = "{self.folder}/plugins"
  transports_folder = "{self.folder}/transports"
  events_folder = "{self.folder}/none"
  loggers_folder = "{self.folder}/none"
  debug_level = 4
  api_secret = "{self.api_secret}"
  admin_secret = "{self.admin_secret}"
  server_name = "onionrp-sfu-test"
  session_timeout = 60
}}
media: {{
  rtp_port_range = "{self.rtp_range}"
}}
nat: {{
  ice_ignore_list = "vmnet"
}}
""")
        (self.folder / "janus.transport.http.jcfg").write_text(f"""
general: {{
  json = "compact"
  base_path = "/janus"
  http = true
  port = {self.http_port}
  ip = "127.0.0.1"
  https = false
}}
admin: {{
  admin_base_path = "/admin"
  admin_http = true
  admin_port = {self.admin_port}
  admin_ip = "127.0.0.1"
  admin_https = false
}}
""")
        (self.folder / "janus.plugin.videoroom.jcfg").write_text(f"""
general: {{
  admin_key = "{self.room_admin_key}"
  lock_rtp_forward = true
}}
""")
        for path in self.folder.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)

    def start(self, timeout=15):
        self.write_config()
        command = [JANUS, "-F", str(self.folder), "-C", str(self.folder / "janus.jcfg"), "-o"]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"janus exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                answer = requests.post(self.url, json={"janus": "info", "transaction": "up"}, timeout=0.5)
                if answer.status_code == 200 and answer.json().get("janus") == "server_info":
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"janus did not answer within {timeout}s:\n{self.logs()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def logs(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def admin(self, request, path="", **members):
        body = {"janus": request, "transaction": secrets.token_hex(6), "admin_secret": self.admin_secret, **members}
        answer = requests.post(self.admin_url + path, data=json.dumps(body), timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def sessions(self):
        return self.admin("list_sessions").get("sessions", [])

    def handles(self):
        """Every handle of every session."""
        found = []
        for session in self.sessions():
            found += self.admin("list_handles", f"/{session}").get("handles", [])
        return found

    def cpu_seconds(self):
        """User + system CPU time of the Janus process so far (/proc/<pid>/stat, clock ticks)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sfu_config(janus, **extra):
    """The plugin's section for `sfu` mode against `janus`."""
    return {"mode": "sfu", "janus_url": janus.url, "janus_admin_url": janus.admin_url, "janus_api_secret": janus.api_secret,
            "janus_admin_secret": janus.admin_secret, "janus_room_admin_key": janus.room_admin_key, **extra}
