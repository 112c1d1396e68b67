"""``python -m airflow_provider_akool.emulator``: serve the emulator in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from airflow_provider_akool.emulator.config import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, EmulatorConfig

DEFAULTS = EmulatorConfig()


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_akool.emulator",
        description=(
            "Serve a local emulator of the Akool Open API (reage, face swap, background change, face detect)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help="key for x-api-key / Authorization: Bearer"
    )
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="clientId accepted by getToken")
    parser.add_argument(
        "--client-secret", default=None, help="clientSecret for getToken (default: the API key)"
    )
    parser.add_argument("--queued-seconds", type=float, default=DEFAULTS.queued_seconds)
    parser.add_argument(
        "--processing-seconds",
        type=float,
        default=DEFAULTS.processing_seconds,
        help="image reage, image face swap, Face Swap Pro",
    )
    parser.add_argument(
        "--video-processing-seconds",
        type=float,
        default=DEFAULTS.video_processing_seconds,
        help="video reage, video face swap",
    )
    parser.add_argument("--bg-processing-seconds", type=float, default=DEFAULTS.bg_processing_seconds)
    parser.add_argument("--result-ttl-seconds", type=float, default=DEFAULTS.result_ttl_seconds)
    parser.add_argument(
        "--token-ttl-seconds",
        type=float,
        default=None,
        help="getToken token lifetime (default: never expires)",
    )
    parser.add_argument("--max-listbyids", type=int, default=DEFAULTS.max_listbyids)
    parser.add_argument("--video-result-bytes", type=int, default=DEFAULTS.video_result_bytes)
    parser.add_argument(
        "--public-base-url", default=None, help="base of result URLs in replies (default: from each request)"
    )
    parser.add_argument(
        "--credit",
        type=float,
        default=DEFAULTS.credit,
        help=(
            f"the account's credit balance; each job costs its price (image reage "
            f"{DEFAULTS.image_reage_credit}, video reage {DEFAULTS.video_reage_credit}, image face swap "
            f"{DEFAULTS.image_faceswap_credit}, video face swap {DEFAULTS.video_faceswap_credit}, Face Swap "
            f"Pro {DEFAULTS.faceswap_pro_credit}, background change {DEFAULTS.background_change_credit}) and "
            f"1006 comes once it runs out"
        ),
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (paths only, no headers)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, print where to connect and with what, and serve until interrupted."""
    args = build_parser().parse_args(argv)
    try:
        # Every option named as a field of the config is that field (--queued-seconds: queued_seconds).
        given = vars(args)
        config = EmulatorConfig(
            **{f.name: given[f.name] for f in dataclasses.fields(EmulatorConfig) if f.name in given}
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    # Imported here so that --help works fast and without the server stack.
    import uvicorn

    from airflow_provider_akool.emulator.app import create_app
    from airflow_provider_akool.emulator.server import bind_socket

    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        print(f"error: cannot bind {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    # These are the emulator's own, configured credentials; printing them is the point of the banner.
    print(f"Akool API emulator on {url}", flush=True)
    print(f"  API base URL:     {url}/api/open/v3", flush=True)
    print(f"  face detect URL:  {url}/detect", flush=True)
    print(f"  x-api-key / Authorization: Bearer  {config.api_key}", flush=True)
    print(f"  getToken clientId={config.client_id} clientSecret={config.secret}", flush=True)
    print(f"  control API:      {url}/_emulator/ (ledger, faults, clock, account, reset)", flush=True)
    server_config = uvicorn.Config(
        create_app(config), log_level=args.log_level, access_log=args.access_log, lifespan="on", ws="none"
    )
    try:
        uvicorn.Server(server_config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl+C it handled; the shutdown was clean, so exit normally.
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
