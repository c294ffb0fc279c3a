"""Build the krew archive of `kubectl govcloud` for one platform, and the manifest naming it.

    python plugins/krew/build.py --os linux --arch amd64 --out build/plugin

The archive holds a launcher `kubectl-govcloud` (a shell script that runs
`python3.X -m govcloud.cli.main` with the archive's lib/ on PYTHONPATH) and lib/: this package
and its dependencies, installed by pip for the platform and CPython version asked for (wheels
only, so a build for another platform never compiles anything). Its sha256 is written into a
copy of plugins/krew/govcloud.yaml next to it, for `kubectl krew install --manifest=...
--archive=...`. Entries are sorted and time-stamped 0, so the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "plugins" / "krew" / "govcloud.yaml"
PIP_PLATFORMS = {
    ("linux", "amd64"): "manylinux2014_x86_64",
    ("linux", "arm64"): "manylinux2014_aarch64",
    ("darwin", "arm64"): "macosx_11_0_arm64",
    ("darwin", "amd64"): "macosx_10_12_x86_64",
}
LAUNCHER = """#!/bin/sh
# kubectl-govcloud: the govcloud kubectl plugin, run from this archive's lib/ with the CPython
# version it was built for ({python}; override with GOVCLOUD_PYTHON).
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
here=$(dirname "$self")
PYTHONPATH="$here/lib${{PYTHONPATH:+:$PYTHONPATH}}" exec "${{GOVCLOUD_PYTHON:-{python}}}" \\
  -m govcloud.cli.main "$@"
"""


def version() -> str:
    return str(yaml.safe_load(MANIFEST.read_text())["spec"]["version"])


def stage(target: Path, os_name: str, arch: str, python: str) -> None:
    """pip installs the package and its dependencies for the platform into target/lib."""
    lib = target / "lib"
    # The package itself is pure Python: a wheel built from this checkout, then installed with
    # its dependencies as wheels for the platform asked for.
    wheels = target.parent / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
         str(REPO_ROOT)],
        check=True,
    )  # fmt: skip
    wheel = next(wheels.glob("govcloud_operator-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-warn-conflicts",
         "--target", str(lib),
         "--only-binary=:all:", "--platform", PIP_PLATFORMS[(os_name, arch)],
         "--python-version", python, "--implementation", "cp", str(wheel)],
        check=True,
    )  # fmt: skip
    # pip records where it installed the wheel from (this machine's path): not part of the
    # plugin, and it would make two builds of the same commit differ.
    for record in lib.glob("govcloud_operator-*.dist-info/direct_url.json"):
        listing = record.parent / "RECORD"
        kept = [line for line in listing.read_text().splitlines() if "direct_url.json" not in line]
        listing.write_text("\n".join(kept) + "\n")
        record.unlink()
    launcher = target / "kubectl-govcloud"
    launcher.write_text(LAUNCHER.format(python=f"python{python}"))
    launcher.chmod(0o755)


def archive(source: Path, out: Path) -> str:
    """A reproducible .tar.gz of source's contents (sorted, mtime 0, root-owned); its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(source.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(source)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    with out.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
        packed.write(buffer.getvalue())
    return hashlib.sha256(out.read_bytes()).hexdigest()


def manifest(os_name: str, arch: str, digest: str, out: Path) -> None:
    """plugins/krew/govcloud.yaml, comments and all, with the archive's sha256 on the
    platform entry whose uri names the archive."""
    lines = MANIFEST.read_text().splitlines(keepends=True)
    archive_name = f"-{os_name}-{arch}.tar.gz"
    found = False
    for number, line in enumerate(lines):
        if line.strip().startswith("uri:") and line.rstrip().endswith(archive_name):
            for later in range(number + 1, len(lines)):
                if lines[later].strip().startswith("sha256:"):
                    indent = lines[later][: len(lines[later]) - len(lines[later].lstrip())]
                    lines[later] = f'{indent}sha256: "{digest}"\n'
                    found = True
                    break
    if not found:
        raise SystemExit(f"{MANIFEST} has no platform {os_name}/{arch}")
    out.write_text("".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--os", dest="os_name", default="linux", choices=("linux", "darwin"))
    parser.add_argument("--arch", default="amd64", choices=("amd64", "arm64"))
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "plugin")
    args = parser.parse_args()
    name = f"kubectl-govcloud-{version()}-{args.os_name}-{args.arch}"
    work = args.out / "stage" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stage(work, args.os_name, args.arch, args.python)
    target = args.out / f"{name}.tar.gz"
    digest = archive(work, target)
    manifest(args.os_name, args.arch, digest, args.out / "govcloud.yaml")
    print(f"{target}\nsha256: {digest}\nmanifest: {args.out / 'govcloud.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
