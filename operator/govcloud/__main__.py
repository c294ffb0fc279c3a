"""Entry point: `govcloud-operator` (or `python -m govcloud`) runs kopf with every handler."""

from __future__ import annotations

import argparse
import os
import sys

import kopf

from govcloud import __version__, handlers, logs, report, settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govcloud-operator",
        description=(
            "Run the govcloud operator against $KUBECONFIG or the in-cluster config."
            " `govcloud-operator report --period YYYY-MM --format csv|json` prints a month's"
            " statement instead, and `govcloud-operator report assessment --year YYYY` each"
            " unit's annual assessment."
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
        help=(
            "run without leader election: act at once, as the only replica (no HA);"
            " default from GOVCLOUD_STANDALONE"
        ),
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
    if args.standalone is not None:
        # The start-up handler reads the settings again from the environment: the flag wins.
        os.environ["GOVCLOUD_STANDALONE"] = "true" if args.standalone else "false"
    logs.setup(verbose=args.verbose)
    handlers.register()
    liveness = f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None
    # kopf never peers: which replica acts is decided by the Lease (govcloud.k8s.lease).
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=liveness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
