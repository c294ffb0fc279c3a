"""Entry point: `govcloud-operator` (or `python -m govcloud`) runs kopf with every handler."""

from __future__ import annotations

import argparse
import sys

import kopf

from govcloud import __version__, handlers, logs, report, settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govcloud-operator",
        description=(
            "Run the govcloud operator against $KUBECONFIG or the in-cluster config."
            " `govcloud-operator report --period YYYY-MM --format csv|json` prints a month's"
            " statement instead."
        ),
    )
    parser.add_argument("--version", action="version", version=f"govcloud-operator {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="debug logging (HTTP bodies and credentials are never logged)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=None,
        help="run without peering (no HA); default from GOVCLOUD_STANDALONE",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        return report.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        config = settings.load()
    except ValueError as error:
        print(f"error: invalid GOVCLOUD_* setting: {error}", file=sys.stderr)
        return 2
    logs.setup(verbose=args.verbose)
    handlers.register()
    standalone = config.standalone if args.standalone is None else args.standalone
    liveness = f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None
    kopf.run(
        clusterwide=True,
        standalone=standalone,
        peering_name=None if standalone else config.peering_name,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
