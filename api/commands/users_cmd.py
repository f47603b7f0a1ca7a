"""``sharpeyes users``: console users (people log in with a name and password; machines keep
API tokens).

==============================  ================================================================
``users list``                  every user: name, display name, role, TOTP, enabled or disabled
``users add NAME --role R``     add a user; the password is asked twice (or ``--password-stdin``)
``users passwd NAME``           set a new password; ends the user's sessions
``users totp NAME``             enrol (or re-enrol) TOTP; prints the ``otpauth://`` URI to scan
``users totp NAME --off``       remove TOTP
``users disable NAME``          refuse logins and end the user's sessions (``enable`` undoes it)
==============================  ================================================================

The store and the installation key come from the service config (``--config``, default: the
config ``sharpeyes serve`` uses), so TOTP secrets are sealed with the key the service opens them
with. Every change is written to the auth audit (client ``cli``).

Wire it with ``add_parser(subparsers)``; ``run(args)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sharpeyes.api.rest.auth.audit import AuthAction, AuthAuditRecord
from sharpeyes.api.rest.auth.tokens import Role
from sharpeyes.api.rest.auth.users import UserService
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import ConfigError

EXIT_OK = 0
Audit = Callable[[AuthAction, str], None]
ROLES = ("viewer", "reviewer", "admin")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``users`` command (and its actions) to a ``add_subparsers()`` object."""
    u: argparse.ArgumentParser = subparsers.add_parser(
        "users", help="console users: add, list, passwords, TOTP, disable"
    )
    u.add_argument("--config", help="service YAML (default: the one 'sharpeyes serve' uses)")
    u.set_defaults(func=run, users_action="list")
    sub = u.add_subparsers(dest="users_action", metavar="ACTION")
    sub.add_parser("list", help="every user")
    add = sub.add_parser("add", help="add a user")
    add.add_argument("name", help="user name (a-z 0-9 . _ @ -), e.g. a police number")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--display-name", default="", help="name shown in the console, e.g. 张三")
    pw = sub.add_parser("passwd", help="set a user's password (ends the user's sessions)")
    pw.add_argument("name")
    for p in (add, pw):
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    totp = sub.add_parser("totp", help="enrol TOTP and print the otpauth:// URI")
    totp.add_argument("name")
    totp.add_argument("--off", action="store_true", help="remove TOTP instead")
    for action in ("disable", "enable"):
        sub.add_parser(action, help=f"{action} a user").add_argument("name")
    return u


@contextmanager
def _users(config_path: str | None) -> Iterator[tuple[UserService, Audit]]:
    """The user service over the configured store, and an audit writer; closes the store."""
    from sharpeyes.api.commands.run import DEMO_CONFIG
    from sharpeyes.api.commands.serve import api_key
    from sharpeyes.api.node.settings import load_service_config
    from sharpeyes.api.rest.auth.sql import SqlAuthAuditLog
    from sharpeyes.api.rest.auth.sql_accounts import SqlSessionRepository, SqlUserRepository
    from sharpeyes.api.store.db import open_database
    from sharpeyes.api.store.migrate import migrate

    config = load_service_config(Path(config_path) if config_path else DEMO_CONFIG)
    key = api_key(config.store.files_root)
    db = open_database(config.store.url)
    try:
        migrate(db)
        users = UserService(SqlUserRepository(db), SqlSessionRepository(db), secret_key=key)
        audit_log = SqlAuthAuditLog(db)

        def audit(action: AuthAction, detail: str) -> None:
            record = AuthAuditRecord(
                at_ms=clock.now_ms(),
                action=action,
                token_id="",
                name="",
                role="",
                client="cli",
                method="CLI",
                path="sharpeyes users",
                status=0,
                detail=detail,
            )
            audit_log.append(record)

        yield users, audit
    finally:
        db.close()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to read the password from: pass --password-stdin")
    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except (EOFError, KeyboardInterrupt):
        raise ConfigError("no password given") from None
    if again != first:
        raise ConfigError("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    """Run the ``users`` action in ``args``; returns the exit status."""
    action = getattr(args, "users_action", None) or "list"
    with _users(args.config) as (users, audit):
        _ACTIONS[action](args, users, audit)
    return EXIT_OK


def _list(args: argparse.Namespace, users: UserService, audit: Audit) -> None:
    rows = users.list()
    _out(f"{'user':20s} {'role':9s} {'totp':5s} {'state':9s} display name")
    for r in rows:
        state = "enabled" if r.active else "disabled"
        totp = "yes" if r.totp_enabled else "no"
        _out(f"{r.username:20s} {r.role.label:9s} {totp:5s} {state:9s} {r.display_name}")
    if not rows:
        _out("(no users: add one with 'sharpeyes users add NAME --role reviewer')")


def _add(args: argparse.Namespace, users: UserService, audit: Audit) -> None:
    record = users.add(args.name, _password(args), Role.parse(args.role), args.display_name)
    audit(AuthAction.USER_CREATED, f"{record.username} {record.role.label}")
    _out(f"added {record.username} ({record.role.label})")


def _passwd(args: argparse.Namespace, users: UserService, audit: Audit) -> None:
    ended = users.set_password(args.name, _password(args))
    audit(AuthAction.PASSWORD_CHANGED, f"{users.get(args.name).username} ({ended} sessions ended)")
    _out(f"password set; {ended} session(s) ended")


def _totp(args: argparse.Namespace, users: UserService, audit: Audit) -> None:
    name = users.get(args.name).username
    if args.off:
        users.remove_totp(name)
        audit(AuthAction.TOTP_REMOVED, name)
        _out(f"TOTP removed for {name}")
        return
    uri = users.enrol_totp(name)
    audit(AuthAction.TOTP_ENROLLED, name)
    _out(uri)
    _out(f"(scan it as a QR code in an authenticator app; {name} now needs a code to log in)")


def _disable(args: argparse.Namespace, users: UserService, audit: Audit) -> None:
    ended = users.disable(args.name)
    name = users.get(args.name).username
    audit(AuthAction.USER_DISABLED, f"{name} ({ended} sessions ended)")
    _out(f"{name} disabled; {ended} session(s) ended")


def _enable(args: argparse.Namespace, users: UserService, audit: Audit) -> None:
    users.enable(args.name)
    name = users.get(args.name).username
    audit(AuthAction.USER_ENABLED, name)
    _out(f"{name} enabled")


_ACTIONS: dict[str, Callable[[argparse.Namespace, UserService, Audit], None]] = {
    "list": _list,
    "add": _add,
    "passwd": _passwd,
    "totp": _totp,
    "disable": _disable,
    "enable": _enable,
}
