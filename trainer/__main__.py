"""The trainer's command line: `python -m trainer {convert,train,versions} ...`.

Settings come from the same environment as the app (see README.md), so a round trained here is
published exactly as the app would publish it, into the same DATA_DIR.

    python -m trainer convert              # convert the embedded model once, print its folder
    python -m trainer train                # one round on the waiting votes, then serve it
    python -m trainer versions             # list versions and their round metrics
    python -m trainer versions --serve v0001   # move the serving pointer (a rollback)
"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import AppSettings, SettingError
from .versions import VersionError, VersionStore


def cmd_convert(settings: AppSettings, args: argparse.Namespace) -> int:
    from .model import resolve_source

    print(resolve_source(settings.model))
    return 0


def cmd_train(settings: AppSettings, args: argparse.Namespace) -> int:
    from .runtime import Runtime

    settings.loop.enabled = False
    runtime = Runtime.start(settings)
    up, down = runtime.votes.waiting_counts()
    if up == 0 or down == 0:
        print(f"error: a round needs waiting votes of both kinds; waiting: {up} up, {down} down", file=sys.stderr)
        return 2
    result = runtime.loop.run_round()
    if result is None:
        print(f"error: the round failed: {runtime.loop.status().last_error}", file=sys.stderr)
        return 1
    print(f"published and serving {result.version} ({result.meta['rows']} rows, {result.meta['steps']} steps, "
          f"{result.meta['timings']['total_s']:.1f} s)")
    return 0


def cmd_versions(settings: AppSettings, args: argparse.Namespace) -> int:
    store = VersionStore(settings.data_dir / "versions")
    if args.serve:
        store.set_current(args.serve, reason="command line")
        print(f"{args.serve} is now the current version; the app serves it from its next start")
        return 0
    current = store.current()
    print(f"{'':2}{'version':8} {'parent':8} {'rows':>5} {'steps':>5} {'loss':>7} {'margin':>7} {'seconds':>8}")
    for info in store.list():
        meta = info.meta
        last = (meta.get("metrics") or [{}])[-1]
        mark = "*" if info.name == current else " "
        print(f"{mark:2}{info.name:8} {meta.get('parent', '-'):8} {meta.get('rows', '-'):>5} "
              f"{meta.get('steps', '-'):>5} {_num(last.get('loss')):>7} {_num(last.get('rewards/margins')):>7} "
              f"{_num(meta.get('timings', {}).get('total_s')):>8}")
    return 0


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("convert", help="convert the embedded model to safetensors once; print its folder")
    commands.add_parser("train", help="run one KTO round on the waiting votes and serve it")
    versions = commands.add_parser("versions", help="list adapter versions, or serve another one")
    versions.add_argument("--serve", metavar="VERSION", help="move the serving pointer to VERSION (or 'base')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = AppSettings.from_env()
        handler = {"convert": cmd_convert, "train": cmd_train, "versions": cmd_versions}[args.command]
        return handler(settings, args)
    except (SettingError, VersionError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
