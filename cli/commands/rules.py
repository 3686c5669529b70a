"""`flagging rules ...`: screening rules that hold documents for a person to decide."""

from __future__ import annotations

import argparse

from cli import output
from cli.commands.common import Parser, audit_change, reading, writing
from flagging import audit, screening


def cmd_rules_add(args: argparse.Namespace) -> int:
    with writing() as session:
        rule = screening.add_rule(
            session, name=args.name, kind=args.kind, pattern=args.pattern, category=args.category
        )
        audit_change(session, audit.Action.RULE_CHANGED, "added", rule_id=rule.id)
        print(f"rule {rule.id} added: {rule.kind} {rule.pattern!r}")
    return 0


def cmd_rules_list(args: argparse.Namespace) -> int:
    with reading() as session:
        rows = [output.rule(r) for r in screening.list_rules(session)]
    output.table(rows, ["id", "category", "kind", "pattern", "name", "active"], args.json)
    return 0


def cmd_rules_enable(args: argparse.Namespace) -> int:
    active = args.action == "enable"
    with writing() as session:
        rule = screening.set_rule_active(session, args.id, active)
        audit_change(session, audit.Action.RULE_CHANGED, "on" if active else "off", rule_id=rule.id)
        print(f"rule {rule.id} ({rule.name}) {'enabled' if active else 'disabled'}")
    return 0


def cmd_rules_starter(args: argparse.Namespace) -> int:
    with writing() as session:
        added = screening.add_starter_rules(session)
        audit_change(session, audit.Action.RULE_CHANGED, "starter", added=added)
    print(f"{added} starter rules added")
    return 0


def register(cli: Parser) -> None:
    """Add the `rules` group."""
    command, group = cli.command, cli.group
    rules = group("rules", "screening rules that hold documents for a person to decide")
    p = command(rules, "add", cmd_rules_add, "add a rule")
    p.add_argument("--kind", choices=screening.KINDS, required=True)
    p.add_argument("--pattern", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--category", default="")
    p = command(rules, "list", cmd_rules_list, "list rules")
    p.add_argument("--json", action="store_true")
    p = command(rules, "disable", cmd_rules_enable, "turn a rule off")
    p.add_argument("id", type=int)
    p = command(rules, "enable", cmd_rules_enable, "turn a rule on again")
    p.add_argument("id", type=int)
    command(rules, "starter", cmd_rules_starter, "add the starter rules (skips those present)")
