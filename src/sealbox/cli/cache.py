"""``sealbox cache start|status|flush|stop``: the local cache agent of a profile."""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run_cache"]


def add_parsers(sub: Any) -> None:
    cache = sub.add_parser("cache", help="the local cache agent (values in memory only)")
    csub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    for name, text in (("start", "start the agent in the background"),
                       ("status", "what the agent holds (no values) and until when"),
                       ("flush", "wipe every value the agent holds"),
                       ("stop", "wipe and stop the agent")):  # fmt: skip
        action = csub.add_parser(name, help=text)
        action.add_argument("--profile", metavar="NAME",
                            help="which login (env SEALBOX_PROFILE; default: default)")  # fmt: skip
        if name == "start":
            action.add_argument(
                "--foreground",
                action="store_true",
                help="run in this process instead of in the background",
            )


def _go(args: argparse.Namespace) -> int:
    from sealbox.client import cache
    from sealbox.client import profile as profiles

    name = profiles.profile_name(args.profile)
    agent = cache.connect(name)
    if args.cache_command == "start":
        if agent is not None:
            with agent:
                pid = agent.call({"op": "status"})["pid"]
            print(f"The cache agent of profile {name!r} already runs (pid {pid}).")
            return exits.OK
        # Refused here, with the usual message and exit code, rather than by an
        # agent that exits at once: an agent serves one login and stops at its end.
        profiles.load(profiles.profile_path(name), name=name)
        cache.prepare_socket_dir(os.path.dirname(cache.socket_file(name)))
        if args.foreground:
            print(f"Cache agent of profile {name!r} on {cache.socket_file(name)}.", flush=True)
            from sealbox.client import cache_agent

            cache_agent.serve(name)
            return exits.OK
        # The agent is this same Python running sealbox's own module; no shell.
        child = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "sealbox.client.cache_agent", name], start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while (agent := cache.connect(name)) is None:
            if child.poll() is not None or time.monotonic() > deadline:
                raise exits.Failed("the cache agent did not start")
            time.sleep(0.05)
        agent.close()
        print(f"Cache agent started (pid {child.pid}) on {cache.socket_file(name)}.")
        return exits.OK
    if agent is None:
        if args.cache_command in ("flush", "stop"):
            print(f"No cache agent runs for profile {name!r}: nothing is cached.")
            return exits.OK
        print(f"No cache agent runs for profile {name!r}.")
        return exits.FAILED
    try:
        if args.cache_command == "status":
            status = agent.call({"op": "status"})
            print(f"Cache agent of profile {name!r}: pid {status['pid']}, "
                  f"{len(status['entries'])} value(s); {status['hits_reported']} hit(s) "
                  "reported to the relay.")  # fmt: skip
            for e in status["entries"]:
                until = datetime.datetime.fromtimestamp(e["until"]).strftime("%H:%M:%S")
                print(f"  {e['ref']}  until {until}  ({e['scope']}, request {e['request'][:12]})")
        elif args.cache_command == "flush":
            print(f"Flushed {agent.call({'op': 'flush'})['flushed']} value(s).")
        else:
            agent.call({"op": "stop"})
            print("Cache agent stopped; its values are wiped.")
    finally:
        agent.close()
    return exits.OK


def run_cache(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _go(args), f"cache {args.cache_command}")
