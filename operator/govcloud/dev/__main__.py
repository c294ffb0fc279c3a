"""CLI for the local control plane: `python -m govcloud.dev cluster up|down|env|status|run`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from govcloud.dev import binaries, cluster


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m govcloud.dev")
    commands = parser.add_subparsers(dest="group", required=True)
    group = commands.add_parser("cluster", help="the local Kubernetes control plane")
    actions = group.add_subparsers(dest="action", required=True)
    for action, text in (
        ("up", "start a cluster in the background"),
        ("run", "start a cluster and keep it until Ctrl-C"),
        ("down", "stop a cluster started with up"),
        ("env", "print the shell line that points kubectl at a cluster"),
        ("status", "say whether a cluster runs"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("--name", default="hub", help="cluster name (default: hub)")
        sub.add_argument("--state-root", type=Path, default=None, help="folder of cluster state")
        if action in ("up", "run"):
            sub.add_argument("--port", type=int, default=None, help="API server port")
            sub.add_argument("--nodes", type=int, default=1, help="kwok nodes (default: 1)")
    tools = commands.add_parser("tools", help="build or find the pinned binaries")
    default_tools = [*binaries.CONTROL_PLANE, "kwok", "helm", "cyclonus", *binaries.BACKUP]
    tools.add_argument("names", nargs="*", default=default_tools)
    return parser


def _control_plane(args: argparse.Namespace, *, detached: bool) -> cluster.ControlPlane:
    root = args.state_root or cluster.default_state_root()
    options: dict[str, object] = {"name": args.name, "state_root": root}
    if hasattr(args, "port"):
        options.update(apiserver_port=args.port, kwok_nodes=args.nodes)
    return cluster.ControlPlane(tie_to_parent=not detached, **options)  # type: ignore[arg-type]


def _state(args: argparse.Namespace) -> dict[str, object] | None:
    root = args.state_root or cluster.default_state_root()
    state_file = root / args.name / "state.json"
    if not state_file.exists():
        return None
    loaded: dict[str, object] = json.loads(state_file.read_text())
    return loaded


def _run_foreground(plane: cluster.ControlPlane) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C must stop the cluster even when the parent started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        plane.start()
        # Inside the try: a Ctrl-C that comes right after this line still stops the cluster.
        print(f"export KUBECONFIG={plane.kubeconfig}   # Ctrl-C stops the cluster", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.group == "tools":
            for name in args.names:
                print(f"{name}: {binaries.ensure(name)}")
            return 0
        if args.action == "up":
            plane = _control_plane(args, detached=True)
            plane.start()
            print(f"export KUBECONFIG={plane.kubeconfig}")
        elif args.action == "run":
            _run_foreground(_control_plane(args, detached=False))
        elif args.action == "down":
            root = args.state_root or cluster.default_state_root()
            cluster.clean_stale(root / args.name)
            print(f"cluster {args.name!r} stopped")
        elif args.action == "env":
            state = _state(args)
            if state is None:
                print(f"cluster {args.name!r} is not running", file=sys.stderr)
                return 1
            print(f"export KUBECONFIG={state['kubeconfig']}")
        elif args.action == "status":
            state = _state(args)
            print(json.dumps(state, indent=2) if state else f"cluster {args.name!r} is not running")
            return 0 if state else 1
    except (cluster.ClusterError, binaries.BinaryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
