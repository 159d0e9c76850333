"""Several engines sharing one real redis-server (AOF on) behind a real nginx that spreads connections across them."""
import signal
import subprocess
import time
from pathlib import Path

import requests

from conftest import Engine, RedisServer, free_port

CLUSTER_CONFIG = """
storage:
  backend: redis
limits:
  rate:
    scene.save: {burst: 100000, per_minute: 6000000}
    moderator-keys.generate: {burst: 1000, per_minute: 100000}
    moderator-keys.consume: {burst: 1000, per_minute: 100000}
plugins:
  - name: moderator-keys
    config:
      max_failures: 1000
"""


class DurableRedis(RedisServer):
    """redis-server with the append-only file fsynced on every write (the documented default for no lost save)."""

    persistence = ("--appendonly", "yes", "--appendfsync", "always")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stream_versions(self):
        """Every version in the shared change log, in order (its ids are `<version>-0`)."""
        lines = self.cli("XRANGE", "onionrp:scenes:log", "-", "+").split()
        return [int(line.split("-")[0]) for line in lines if line.endswith("-0") and line.split("-")[0].isdigit()]


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream engines {{
{servers}
  }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://engines;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_connect_timeout 1s;
      proxy_read_timeout 3600s;
      proxy_next_upstream error timeout http_502;
    }}
  }}
}}
"""


class Nginx:
    """Debian's nginx as a non-root reverse proxy on a loopback port (round robin over the engines)."""

    def __init__(self, folder: Path, engines):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        servers = "\n".join(f"    server 127.0.0.1:{engine.port} max_fails=1 fail_timeout=2s;" for engine in engines)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(folder=folder, servers=servers, port=self.port))
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-c", str(self.conf), "-p", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                if requests.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError("nginx did not answer")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Cluster:
    def __init__(self, folder: Path, size=3, config=CLUSTER_CONFIG, env=None):
        self.folder = folder
        self.redis = DurableRedis(folder).start()
        self.engines = []
        for index in range(size):
            workdir = folder / f"engine{index}"
            workdir.mkdir()
            engine = Engine(workdir, config, {"REDIS_URL": self.redis.url, **(env or {})})
            self.engines.append(engine.start(timeout=60))
        self.nginx = Nginx(folder / "nginx", self.engines).start()

    def kill(self, engine):
        engine.proc.send_signal(signal.SIGKILL)
        engine.proc.wait(timeout=10)

    def stop(self):
        self.nginx.stop()
        for engine in self.engines:
            engine.stop()
        self.redis.stop()

    def overlays_per_engine(self):
        counts = []
        for engine in self.engines:
            if engine.proc.poll() is not None:
                counts.append(None)
                continue
            metrics = requests.get(engine.url + "/metrics", timeout=5).text
            line = next((l for l in metrics.splitlines() if l.startswith('onionrp_ws_connections{channel="overlay"}')), "0 0")
            counts.append(int(float(line.split()[-1])))
        return counts
