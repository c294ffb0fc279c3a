"""An S3-compatible object store for the backup tests: moto's server mode, as a child process.

Velero writes backups to it exactly as it would to any S3 endpoint (path-style addressing, a
static key pair). moto keeps its buckets in memory, so a stopped store leaves nothing behind.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from govcloud.dev import testing

REGION = "us-east-1"


@dataclass
class ObjectStore:
    """A running moto S3 server on 127.0.0.1 with its own random credentials."""

    log_path: Path
    port: int = field(default_factory=testing.free_port)
    access_key: str = field(default_factory=lambda: f"GOVCLOUD{secrets.token_hex(6).upper()}")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ObjectStore:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        testing.eventually(self._serving, timeout=30, what="the S3 server (moto) to answer")
        return self

    def _serving(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"moto exited with {self.process.returncode}")
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.url}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise AssertionError(f"creating bucket {name} answered {response.status}")

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Object keys in `bucket` under `prefix` (ListObjectsV2, first page)."""
        query = f"list-type=2&prefix={prefix}" if prefix else "list-type=2"
        with urllib.request.urlopen(f"{self.url}/{bucket}?{query}", timeout=10) as response:
            body = response.read().decode()
        return [part.split("</Key>")[0] for part in body.split("<Key>")[1:]]

    def credentials_file(self) -> str:
        """The AWS shared-credentials text Velero's AWS plugin reads."""
        return (
            "[default]\n"
            f"aws_access_key_id={self.access_key}\n"
            f"aws_secret_access_key={self.secret_key}\n"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
