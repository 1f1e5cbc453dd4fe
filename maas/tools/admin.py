"""The operator's commands behind `maas tenants|keys|usage`: tenants, API keys, usage reports and exports.

They work on the DynamoDB tables of one deployment, named by MAAS_TENANTS_TABLE, MAAS_API_KEYS_TABLE and
MAAS_USAGE_TABLE (the stack's outputs TenantsTable, ApiKeysTable, UsageTable) with the usual AWS
credentials, region and endpoint from the environment; or, with `--local URL` (MAAS_LOCAL_AWS), on the
AWS emulator of `maas serve` at URL, under the local table names.

A key is printed once, when it is made; listings and exports show only its non-secret prefix. Usage is
priced from the month's usage events (see maas.metering.export for why, and maas.metering.pricing for how the
money is rounded), with each tenant's current plan: the tables keep no plan history, so a plan changed mid-month
prices the whole month.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from maas.metering.export import InvoiceLine, cloud_event, invoice_lines
from maas.metering.reports import aggregate_mismatches, parse_month, rfc3339
from maas.metering.store import Meter, UsageEvent, month_of
from maas.settings.names import AUTHORIZER_CACHE_TTL_S, ENV_PLANS_FILE
from maas.tables import API_KEYS, TENANTS, USAGE
from maas.tenancy.plans import Plan, PlansError, default_plans, load_plans
from maas.tenancy.store import (
    ACTIVE,
    REVOKED,
    SUSPENDED,
    TENANT_ID_RE,
    KeyRecord,
    TenancyError,
    Tenant,
    TenantStore,
    UsagePlanKeys,
)

LOCAL_ENV = "MAAS_LOCAL_AWS"
TABLES = (TENANTS, API_KEYS, USAGE)
CSV_COLUMNS = (
    "tenant_id",
    "tenant_name",
    "plan",
    "month",
    "model",
    "family",
    "channel",
    "units",
    "requests",
    "unit_price_per_million_usd",
    "amount_usd",
)
TOTAL = "TOTAL"


class AdminError(Exception):
    """A command that cannot be done (unknown tenant, unreachable tables...): exit status 1."""

    exit_code = 1


class BadArgument(AdminError):
    """A malformed or unknown argument (month, plan, format): exit status 2, as for argparse's own errors."""

    exit_code = 2


# --- where the tables are ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    tenants_table: str
    api_keys_table: str
    usage_table: str
    local_url: str | None = None  # the emulator's URL; None: the AWS account/endpoint of the environment


USAGE_PLAN_IDS_ENV = "MAAS_USAGE_PLAN_IDS"


def no_target_message(missing: Sequence[str] = ()) -> str:
    names = ", ".join(spec.env_var for spec in TABLES)
    outputs = ", ".join(f"{spec.logical_name}Table" for spec in TABLES)
    lack = f" ({', '.join(missing)} not set)" if missing else ""
    return (
        f"no tables to work on{lack}. Point the CLI at a deployment: export {names} (the stack outputs "
        f"{outputs}) and your usual AWS credentials and region; or at a local service: run `maas serve` and "
        f"pass the AWS emulator URL it prints, e.g. `maas --local http://127.0.0.1:PORT tenants list` "
        f"(or export {LOCAL_ENV}=URL)."
    )


def resolve_target(local_url: str | None, environ: Mapping[str, str]) -> Target:
    """--local (or MAAS_LOCAL_AWS) wins: the emulator with the local table names. Else all three table
    variables must be set."""
    local_url = local_url or environ.get(LOCAL_ENV) or None
    if local_url:
        if not local_url.startswith(("http://", "https://")):
            raise BadArgument(f"--local wants the emulator's URL, e.g. http://127.0.0.1:5000; got {local_url!r}")
        return Target(TENANTS.local_name, API_KEYS.local_name, USAGE.local_name, local_url.rstrip("/"))
    names = {spec.env_var: (environ.get(spec.env_var) or "").strip() for spec in TABLES}
    missing = [name for name, value in names.items() if not value]
    if missing:
        raise BadArgument(no_target_message(missing if len(missing) < len(TABLES) else ()))
    return Target(*(names[spec.env_var] for spec in TABLES))


def usage_plan_keys(target: Target, environ: Mapping[str, str], command: str) -> UsagePlanKeys | None:
    """On a deployment, new tenants must be registered with API Gateway's usage plans (stack output
    UsagePlanIds, exported as MAAS_USAGE_PLAN_IDS); locally `maas serve` throttles by plan itself."""
    if target.local_url is not None or command != "tenants create":
        return None
    raw = (environ.get(USAGE_PLAN_IDS_ENV) or "").strip()
    if not raw:
        raise BadArgument(
            f"creating a tenant on a deployment needs {USAGE_PLAN_IDS_ENV}: export it from the stack output "
            "UsagePlanIds (a JSON object plan -> usage plan id), so API Gateway throttles the tenant by its plan"
        )
    try:
        ids = json.loads(raw)
        if not isinstance(ids, dict) or not all(isinstance(v, str) for v in ids.values()):
            raise ValueError("expected an object of strings")
    except ValueError as exc:
        raise BadArgument(f"{USAGE_PLAN_IDS_ENV} is not a JSON object plan -> id: {exc}") from None
    import boto3

    return UsagePlanKeys(boto3.client("apigateway"), ids)


def dynamodb_client(target: Target):
    import boto3
    from botocore.config import Config

    if target.local_url is None:
        return boto3.client("dynamodb")  # endpoint, region and credentials as the environment says
    from maas.tools.local.emulator import aws_env

    env = aws_env(target.local_url)
    return boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        config=Config(connect_timeout=5, retries={"max_attempts": 2}),
    )


def plans_from(environ: Mapping[str, str]) -> dict[str, Plan]:
    """The plans the functions use: MAAS_PLANS_FILE when set (as for a function), else the packaged ones."""
    path = environ.get(ENV_PLANS_FILE)
    try:
        return load_plans(Path(path)) if path else default_plans()
    except PlansError as exc:
        raise AdminError(str(exc)) from None


# --- output helpers ------------------------------------------------------------------------------------------


def when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """Aligned columns, two spaces apart; columns listed in ``right`` are right-aligned (numbers)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _n(value: int) -> str:
    return f"{value:,}"


@dataclass
class TenantMonth:
    """One tenant's usage events in a month, and (when priced) its invoice lines."""

    tenant: Tenant
    events: list[UsageEvent]
    plan: Plan | None = None
    lines: list[InvoiceLine] | None = None

    @property
    def units(self) -> int:
        return sum(line.units for line in self.lines)

    @property
    def requests(self) -> int:
        return sum(line.requests for line in self.lines)

    @property
    def compute_ms(self) -> float:
        return sum(line.compute_ms for line in self.lines)

    @property
    def amount_usd(self) -> Decimal:
        """The sum of the rounded lines, as the invoice adds them up."""
        return sum((line.amount_usd for line in self.lines), Decimal("0.00"))


# --- the commands ----------------------------------------------------------------------------------------------


class Admin:
    """Each public method is one command: it prints its result to ``out`` (warnings to ``err``), returns 0,
    and raises AdminError (or TenancyError) when it cannot do what was asked."""

    def __init__(self, store: TenantStore, meter: Meter, plans: dict[str, Plan], out: TextIO, err: TextIO):
        self.store, self.meter, self.plans, self.out, self.err = store, meter, plans, out, err

    def _print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def _warn(self, message: str) -> None:
        print(f"warning: {message}", file=self.err)

    def _plan(self, name: str) -> Plan:
        if name not in self.plans:
            raise BadArgument(f"unknown plan {name!r}; plans: {', '.join(self.plans)}")
        return self.plans[name]

    def _key_shown_once(self, tenant_id: str, key: str, record: KeyRecord) -> None:
        self._print(
            "",
            f"API key for tenant {tenant_id} (prefix {record.prefix}).",
            "It is shown ONLY NOW and cannot be recovered (only its hash is stored); store it safely:",
            "",
            f"    {key}",
            "",
        )

    def _tenant_lines(self, tenant: Tenant) -> list[str]:
        return [
            f"tenant   {tenant.tenant_id}",
            f"name     {tenant.name}",
            f"plan     {tenant.plan}",
            f"status   {tenant.status}",
            f"created  {when(tenant.created)}",
        ]

    # tenants
    def tenants_create(self, name: str, plan: str, tenant_id: str | None = None) -> int:
        self._plan(plan)
        if not name.strip():
            raise BadArgument("the tenant's name must not be empty")
        if tenant_id is not None and not TENANT_ID_RE.match(tenant_id):
            raise BadArgument(
                f"tenant id {tenant_id!r}: use 2-63 characters of a-z, 0-9 and '-', not starting with '-'"
            )
        tenant = self.store.create_tenant(name.strip(), plan, tenant_id)
        try:
            key, record = self.store.create_key(tenant.tenant_id)
        except Exception as exc:
            raise AdminError(
                f"tenant {tenant.tenant_id} was created but its first key was not ({exc}); "
                f"make one with `maas keys create {tenant.tenant_id}`"
            ) from None
        self._print("created:", *self._tenant_lines(tenant))
        self._key_shown_once(tenant.tenant_id, key, record)
        return 0

    def tenants_list(self) -> int:
        tenants = self.store.list_tenants()
        if not tenants:
            self._print("no tenants yet: create one with `maas tenants create NAME --plan PLAN`")
            return 0
        rows = [(t.tenant_id, t.name, t.plan, t.status, when(t.created)) for t in tenants]
        self._print(table(("TENANT", "NAME", "PLAN", "STATUS", "CREATED"), rows))
        return 0

    def tenants_show(self, tenant_id: str, now: float | None = None) -> int:
        tenant = self.store.require_tenant(tenant_id)
        now = datetime.now(UTC).timestamp() if now is None else now
        self._print(*self._tenant_lines(tenant), "")
        keys = self.store.list_keys(tenant_id)
        if keys:
            rows = [(k.prefix, k.status, when(k.created), when(k.revoked)) for k in keys]
            self._print("keys:", table(("PREFIX", "STATUS", "CREATED", "REVOKED"), rows), "")
        else:
            self._print(f"keys: none (make one with `maas keys create {tenant_id}`)", "")
        month = month_of(now)
        usage = self.meter.monthly(tenant_id, month)
        if usage:
            rows = [(u["model"], _n(u["units"]), _n(u["requests"]), f"{u['compute_ms']:.1f}") for u in usage]
            self._print(f"usage {month}:", table(("MODEL", "UNITS", "REQUESTS", "COMPUTE_MS"), rows, (1, 2, 3)))
        else:
            self._print(f"usage {month}: none")
        plan = self.plans.get(tenant.plan)
        if plan is None:
            self._warn(f"plan {tenant.plan!r} is not in the plans file: no quota to show")
            return 0
        quota = self.meter.quota(tenant_id, plan.monthly_quota, now)
        self._print(
            f"quota {month}: {_n(quota.consumed)} of {_n(quota.limit)} units used, {_n(quota.remaining)} "
            f"remaining; resets {rfc3339(quota.reset)}"
        )
        return 0

    def tenants_set_status(self, tenant_id: str, status: str) -> int:
        tenant = self.store.set_status(tenant_id, status)
        verb = "suspended" if status == SUSPENDED else "resumed (active)"
        self._print(
            f"tenant {tenant.tenant_id} {verb}; API Gateway caches the authorizer's answer, so this takes "
            f"effect within {AUTHORIZER_CACHE_TTL_S} s"
        )
        return 0

    # keys
    def keys_create(self, tenant_id: str) -> int:
        tenant = self.store.require_tenant(tenant_id)
        key, record = self.store.create_key(tenant_id)
        self._key_shown_once(tenant_id, key, record)
        if tenant.status != ACTIVE:
            self._warn(f"tenant {tenant_id} is {tenant.status}: the key works once it is resumed")
        return 0

    def keys_list(self, tenant_id: str) -> int:
        self.store.require_tenant(tenant_id)
        keys = self.store.list_keys(tenant_id)
        if not keys:
            self._print(f"tenant {tenant_id} has no keys")
            return 0
        rows = [(k.prefix, k.status, when(k.created), when(k.revoked)) for k in keys]
        self._print(table(("PREFIX", "STATUS", "CREATED", "REVOKED"), rows))
        return 0

    def _key(self, tenant_id: str, prefix: str) -> KeyRecord:
        self.store.require_tenant(tenant_id)
        for record in self.store.list_keys(tenant_id):
            if record.prefix == prefix:
                return record
        raise AdminError(f"tenant {tenant_id} has no key with prefix {prefix!r} (see `maas keys list {tenant_id}`)")

    def keys_revoke(self, tenant_id: str, prefix: str) -> int:
        record = self._key(tenant_id, prefix)
        if record.status == REVOKED:
            self._print(f"key {prefix} of tenant {tenant_id} was already revoked at {when(record.revoked)}")
            return 0
        record = self.store.revoke_key(tenant_id, prefix)
        self._print(
            f"key {prefix} of tenant {tenant_id} revoked at {when(record.revoked)}; API Gateway caches the "
            f"authorizer's answer, so it stops working within {AUTHORIZER_CACHE_TTL_S} s"
        )
        return 0

    def keys_rotate(self, tenant_id: str, prefix: str) -> int:
        # Checked first: TenantStore.rotate_key makes the new key before it revokes the old one, so a wrong
        # prefix would leave a new, never-shown key behind.
        record = self._key(tenant_id, prefix)
        if record.status == REVOKED:
            raise AdminError(f"key {prefix} is already revoked; make a new one with `maas keys create {tenant_id}`")
        key, new = self.store.rotate_key(tenant_id, prefix)
        self._print(f"key {prefix} of tenant {tenant_id} revoked; its replacement is {new.prefix}")
        self._key_shown_once(tenant_id, key, new)
        return 0

    # usage
    def _usage_of(self, month: str, tenant_id: str | None, priced: bool) -> list[TenantMonth]:
        """The month's usage of one tenant or of every tenant that has some, oldest tenant first."""
        try:
            start, end = parse_month(month)
        except ValueError as exc:
            raise BadArgument(str(exc)) from None
        tenants = [self.store.require_tenant(tenant_id)] if tenant_id else self.store.list_tenants()
        result = []
        for tenant in tenants:
            events = self.meter.events(tenant.tenant_id, start, end)
            if not events:
                continue
            item = TenantMonth(tenant, events)
            if priced:
                item.plan = self.plans.get(tenant.plan)
                if item.plan is None:
                    raise AdminError(
                        f"tenant {tenant.tenant_id} is on plan {tenant.plan!r}, which the plans file does not "
                        f"define: its usage cannot be priced"
                    )
                item.lines = invoice_lines(tenant.tenant_id, item.plan, events)
                for line in item.lines:
                    if not line.priced:
                        self._warn(
                            f"plan {tenant.plan!r} has no price for family {line.family!r} "
                            f"({line.model}, {tenant.tenant_id}): priced at 0"
                        )
                for problem in aggregate_mismatches(item.lines, self.meter.monthly(tenant.tenant_id, month)):
                    # The aggregates trail the events by the stream's batching: a call billed seconds ago may lag.
                    self._warn(f"{tenant.tenant_id} {month}: {problem}")
            result.append(item)
        return result

    def usage_report(self, month: str, tenant_id: str | None = None) -> int:
        months = self._usage_of(month, tenant_id, priced=True)
        if not months:
            self._print(f"no usage in {month}" + (f" for tenant {tenant_id}" if tenant_id else ""))
            return 0
        rows = []
        for m in months:
            t, plan = m.tenant.tenant_id, m.plan.name
            for line in m.lines:
                price, amount = line.unit_price_per_million_usd, line.amount_usd
                compute = f"{line.compute_ms:.1f}"
                family = f"{line.family} (batch)" if line.batch else line.family
                rows.append((t, plan, line.model, family, _n(line.units), _n(line.requests), compute, price, amount))
            rows.append((t, plan, TOTAL, "-", _n(m.units), _n(m.requests), f"{m.compute_ms:.1f}", "-", m.amount_usd))
        grand = (
            _n(sum(m.units for m in months)),
            _n(sum(m.requests for m in months)),
            f"{sum(m.compute_ms for m in months):.1f}",
            "-",
            sum((m.amount_usd for m in months), Decimal("0.00")),
        )
        rows.append((TOTAL, "-", "-", "-", *grand))
        headers = ("TENANT", "PLAN", "MODEL", "FAMILY", "UNITS", "REQUESTS", "COMPUTE_MS", "USD_PER_1M", "AMOUNT_USD")
        self._print(f"usage {month} (from usage events; prices per million units from each tenant's plan)")
        self._print(table(headers, rows, right=(4, 5, 6, 7, 8)))
        return 0

    def usage_export(self, month: str, fmt: str, out_file: str | None = None, tenant_id: str | None = None) -> int:
        if fmt not in ("csv", "cloudevents"):
            raise BadArgument(f"unknown format {fmt!r}; use csv or cloudevents")
        months = self._usage_of(month, tenant_id, priced=fmt == "csv")
        writer = write_csv if fmt == "csv" else write_cloudevents
        if out_file is None:
            count = writer(months, month, self.out)
            self.out.flush()
        else:
            try:
                with open(out_file, "w", newline="", encoding="utf-8") as f:
                    count = writer(months, month, f)
            except OSError as exc:
                raise AdminError(f"cannot write {out_file}: {exc.strerror or exc}") from None
        what = "invoice lines" if fmt == "csv" else "usage events"
        tenants = f"{len(months)} tenant" + ("" if len(months) == 1 else "s")
        print(f"{count} {what} for {tenants}, {month}" + (f", in {out_file}" if out_file else ""), file=self.err)
        return 0


def write_csv(months: list[TenantMonth], month: str, f: TextIO) -> int:
    """Invoice lines, a TOTAL line per tenant, a grand TOTAL line. Returns the number of invoice lines."""
    w = csv.writer(f, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for m in months:
        t = m.tenant
        for line in m.lines:
            w.writerow(
                (t.tenant_id, t.name, m.plan.name, month, line.model, line.family, line.channel, line.units)
                + (line.requests,)
                + (line.unit_price_per_million_usd, line.amount_usd)
            )
        w.writerow((t.tenant_id, t.name, m.plan.name, month, TOTAL, "", "", m.units, m.requests, "", m.amount_usd))
    units, requests = sum(m.units for m in months), sum(m.requests for m in months)
    w.writerow(
        (TOTAL, "", "", month, "", "", "", units, requests, "", sum((m.amount_usd for m in months), Decimal("0.00")))
    )
    return sum(len(m.lines) for m in months)


def write_cloudevents(months: list[TenantMonth], month: str, f: TextIO) -> int:
    """One CloudEvents JSON object per line, one per usage event. Returns the number of events."""
    count = 0
    for m in months:
        for event in m.events:
            f.write(json.dumps(cloud_event(event), separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
    return count


# --- entry point for the CLI --------------------------------------------------------------------------------


COMMANDS: dict[str, Callable[[Admin, object], int]] = {
    "tenants create": lambda a, args: a.tenants_create(args.name, args.plan, args.id),
    "tenants list": lambda a, args: a.tenants_list(),
    "tenants show": lambda a, args: a.tenants_show(args.tenant),
    "tenants suspend": lambda a, args: a.tenants_set_status(args.tenant, SUSPENDED),
    "tenants resume": lambda a, args: a.tenants_set_status(args.tenant, ACTIVE),
    "keys create": lambda a, args: a.keys_create(args.tenant),
    "keys list": lambda a, args: a.keys_list(args.tenant),
    "keys revoke": lambda a, args: a.keys_revoke(args.tenant, args.prefix),
    "keys rotate": lambda a, args: a.keys_rotate(args.tenant, args.prefix),
    "usage report": lambda a, args: a.usage_report(args.month, args.tenant),
    "usage export": lambda a, args: a.usage_export(args.month, args.format, args.out, args.tenant),
}


def run(
    command: str,
    args,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one admin command; every failure becomes one `error:` line on ``err`` and exit status 1 or 2."""
    from botocore.exceptions import BotoCoreError, ClientError

    environ = os.environ if environ is None else environ
    out, err = out or sys.stdout, err or sys.stderr
    try:
        target = resolve_target(getattr(args, "local", None), environ)
        client = dynamodb_client(target)
        plans = plans_from(environ)
        store = TenantStore(
            client, target.tenants_table, target.api_keys_table, plans, usage_plan_keys(target, environ, command)
        )
        admin = Admin(store, Meter(client, target.usage_table), plans, out, err)
        return COMMANDS[command](admin, args)
    except AdminError as exc:
        print(f"error: {exc}", file=err)
        return exc.exit_code
    except TenancyError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except ClientError as exc:
        info = exc.response.get("Error", {})
        print(f"error: DynamoDB refused: {info.get('Code', '?')}: {info.get('Message', exc)}", file=err)
        if info.get("Code") == "ResourceNotFoundException":
            names = ", ".join(spec.env_var for spec in TABLES)
            print(f"hint: check the table names ({names}) or the --local URL", file=err)
        return 1
    except BotoCoreError as exc:  # no connection, no region, no credentials...
        print(f"error: cannot use DynamoDB: {exc}", file=err)
        return 1
