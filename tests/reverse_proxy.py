"""nginx (Debian's package) in front of several API processes, as production runs them (docs/production.md):
round robin over the upstreams, the client's address in X-Forwarded-For (the API believes it from this proxy
only: HALTON_FORWARDED_ALLOW_IPS), and an `X-Upstream` response header naming the process that answered, so a
test can tell which one served a request.

Each proxy gets a folder of its own (configuration, pid, logs, temp files), outside pytest's temp root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from halton_meter.testing.processes import free_port, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """\
{user}worker_processes 2;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {home}/access.log;
    client_body_temp_path {home}/client_body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    client_max_body_size 16m;
    upstream halton_api {{
{servers}
        keepalive 32;
        # Below uvicorn's 5 s: nginx must drop an idle connection before uvicorn closes it, else a request
        # sent on it as it closes gets a 502 (a POST is never retried on another upstream).
        keepalive_timeout 3s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://halton_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 120s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """nginx on a free loopback port, proxying to `upstreams` (host:port each)."""

    home: Path
    upstreams: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = self.port or free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {upstream};" for upstream in self.upstreams)
        # Started as root, nginx would run its workers as `nobody`, who cannot use this private folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.home / "nginx.conf"
        conf.write_text(CONFIG.format(user=user, home=self.home, servers=servers, port=self.port))
        log = (self.home / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.home), "-c", str(conf), "-e", str(self.home / "error.log"),
             "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._answers, timeout=30, what=f"nginx on {self.url} (log: {self.home / 'error.log'})")

    def _answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (self.home / "error.log").read_text()
        try:
            httpx.get(f"{self.url}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    def errors(self) -> str:
        """nginx's error log (why a request got a 502, say)."""
        path = self.home / "error.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
