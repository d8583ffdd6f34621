"""The ``lockgate`` command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence

import msgspec

from backends.onnx.export import add_models_parser
from backends.replicas.server import add_parser as add_sim_server_parser
from gateway import __version__
from gateway.auth import hash_key
from gateway.commands import experiments as experiments_command
from gateway.commands import keys as keys_command
from gateway.config.loader import ConfigError, default_config_text, load_config, load_default_config
from gateway.config.redis_target import RedisTargetError
from gateway.config.redis_target import resolve as resolve_redis_target
from gateway.config.schema import Config
from loadtest.cli import add_bench_parser

EXAMPLES = """\
examples:
  lockgate serve                              serve the built-in default (model "sim-small" on the simulator)
  lockgate serve --config examples/sim.toml --port 9000
  lockgate config check examples/sim.toml     validate a config; errors name the field and line
  lockgate config hash-key                    read a key (hidden) and print the sha256 to put in [[auth.keys]]
  lockgate config default                     print the built-in default config
  lockgate gateway --config lockgate.toml     HTTP gateway only; jobs go through Redis to workers
  lockgate worker --config lockgate.toml      workers for every backend of the config (Redis dispatch)
  lockgate keys create --name team-a --rpm 600   an API key with limits, through a running gateway's admin API

then, with the official SDK:
  python -c "import openai; c = openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x'); \\
print(c.chat.completions.create(model='sim-small', messages=[{'role':'user','content':'hi'}]))"
"""


def _load(path: str | None) -> Config:
    return load_config(path) if path else load_default_config()


def _with_redis(config: Config, url: str | None, force: bool) -> Config:
    """``--redis URL`` (or ``force``, for the gateway and worker commands) selects the Redis dispatch."""
    if url is None and not force:
        return config
    dispatch = msgspec.structs.replace(config.dispatch, kind="redis", redis_url=url or config.dispatch.redis_url)
    try:  # the URL given here, or LOCKGATE_REDIS_URL, was not seen by the config check
        resolve_redis_target(dispatch)
    except RedisTargetError as exc:
        raise ConfigError([("", str(exc), None)], "--redis / LOCKGATE_REDIS_URL") from None
    return msgspec.structs.replace(config, dispatch=dispatch)


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server import run

    config = _with_redis(_load(args.config), args.redis, force=False)
    configure_logging(args.log_format or config.server.log_format, args.log_level or config.server.log_level)
    return run(config, args.host, args.port)


def _cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server import run

    config = _with_redis(_load(args.config), args.redis, force=True)
    configure_logging(args.log_format or config.server.log_format, args.log_level or config.server.log_level)
    return run(config, args.host, args.port, local_workers=False)


def _cmd_worker(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.worker_process import UnknownBackends, run_worker

    config = _with_redis(_load(args.config), args.redis, force=True)
    configure_logging(args.log_format or config.server.log_format, args.log_level or config.server.log_level)
    try:
        return run_worker(config, args.backend)
    except UnknownBackends as exc:
        print(f"lockgate: {exc}", file=sys.stderr)
        return 2


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    models = ", ".join(f"{name} -> {'/'.join(m.backend for m in model.backends)}"
                       for name, model in config.models.items())
    dispatch: str = config.dispatch.kind
    if dispatch == "redis":  # where it points, from the file alone (never a password)
        dispatch += f" ({resolve_redis_target(config.dispatch, environ={}).describe()})"
    print(f"{args.file}: OK ({len(config.models)} model(s): {models}; {len(config.backends)} backend(s); "
          f"dispatch {dispatch}; auth {'on' if config.auth.enabled else 'OFF'})")
    return 0


def _cmd_hash_key(args: argparse.Namespace) -> int:
    key = args.key if args.key not in (None, "-") else (
        sys.stdin.readline().strip() if args.key == "-" or not sys.stdin.isatty() else getpass.getpass("API key: "))
    if not key:
        print("lockgate: empty key", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def _cmd_default(_: argparse.Namespace) -> int:
    sys.stdout.write(default_config_text())
    return 0


def _listen_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML config (default: the built-in sim config)")
    parser.add_argument("--host", help="listen address (default: from config, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: from config, 8000)")


def _log_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=["text", "json"], help="log line format")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockgate", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="OpenAI-compatible serving gateway for LLM engines.")
    parser.add_argument("--version", action="version", version=f"lockgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run gateway, embedded dispatch and workers in one process",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  lockgate serve\n  lockgate serve --config lockgate.toml --host 0.0.0.0 --port 8000\n"
               "  LOCKGATE_API_KEYS=dev-key lockgate serve --config lockgate.toml --log-format json\n")
    _listen_args(serve)
    serve.add_argument("--redis", metavar="URL",
                       help="dispatch through Redis at URL (workers run in this process and in any "
                            "`lockgate worker`); default: embedded, or the config's [dispatch]")
    _log_args(serve)
    serve.set_defaults(func=_cmd_serve)

    gw = sub.add_parser(
        "gateway", help="run the HTTP gateway only; jobs go through Redis to `lockgate worker` processes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  lockgate gateway --config lockgate.toml --port 8000\n"
               "  LOCKGATE_REDIS_URL=redis://redis:6379/0 lockgate gateway --config lockgate.toml\n"
               "  lockgate gateway --config lockgate.toml --redis redis://127.0.0.1:6379/1 --port 8001\n"
               "  lockgate gateway --config lockgate.toml --redis redis+sentinel://s1:26379,s2:26379/mymaster/0\n"
               "  lockgate gateway --config lockgate.toml --redis redis+cluster://n1:7000,n2:7000,n3:7000\n"
               "\nAny number of gateways and workers may share one Redis. SIGTERM drains: no new requests,\n"
               "running ones get server.shutdown_grace_s to finish.\n")
    _listen_args(gw)
    gw.add_argument("--redis", metavar="URL", help="Redis URL (default: LOCKGATE_REDIS_URL, then the config)")
    _log_args(gw)
    gw.set_defaults(func=_cmd_gateway)

    wk = sub.add_parser(
        "worker", help="run workers that take jobs from Redis and drive the configured backends",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  lockgate worker --config lockgate.toml                 every backend of the config\n"
               "  lockgate worker --config lockgate.toml --backend vllm-a  only this one (repeat for more)\n"
               "  LOCKGATE_REDIS_URL=redis://redis:6379/0 lockgate worker --config lockgate.toml\n"
               "  lockgate worker --config lockgate.toml --redis rediss+cluster://n1:7000,n2:7000\n"
               "\nSIGTERM stops taking jobs, lets running ones finish for server.shutdown_grace_s, then hands\n"
               "the rest back to other workers (or fails them with one error if tokens were already sent).\n")
    wk.add_argument("--config", "-c", metavar="FILE", help="TOML config (default: the built-in sim config)")
    wk.add_argument("--backend", "-b", action="append", metavar="NAME",
                    help="serve this backend (repeatable; default: all configured backends)")
    wk.add_argument("--redis", metavar="URL", help="Redis URL (default: LOCKGATE_REDIS_URL, then the config)")
    _log_args(wk)
    wk.set_defaults(func=_cmd_worker)

    config = sub.add_parser("config", help="validate and inspect configs")
    csub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = csub.add_parser("check", help="validate a config file; errors name the field and line",
                            epilog="example:\n  lockgate config check lockgate.toml",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("file")
    check.set_defaults(func=_cmd_check)
    hk = csub.add_parser("hash-key", help="print the SHA-256 of an API key for [[auth.keys]]",
                         epilog="examples:\n  lockgate config hash-key            (prompts, input hidden)\n"
                                "  echo -n $KEY | lockgate config hash-key -",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    hk.add_argument("key", nargs="?", help="the key, or - to read it from stdin (default: prompt)")
    hk.set_defaults(func=_cmd_hash_key)
    default = csub.add_parser("default", help="print the built-in default config")
    default.set_defaults(func=_cmd_default)
    experiments_command.add_parser(sub)
    keys_command.add_parser(sub)
    add_sim_server_parser(sub)
    add_bench_parser(sub)
    add_models_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except ConfigError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
