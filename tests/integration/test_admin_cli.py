"""`maas tenants|keys|usage` driven through maas.tools.cli.main against the emulator (--local): keys shown once
and working, lifecycle commands, exact invoice math, exports without key material, clean errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from maas.errors import Forbidden, Unauthorized
from maas.metering.store import Meter, UsageEvent
from maas.tables import API_KEYS, TENANTS, USAGE
from maas.tenancy.plans import default_plans
from maas.tenancy.store import TenantStore
from maas.tools.cli import main
from maas.tools.local.emulator import aws_env

KEY = re.compile(r"maas_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}")
TABLE_VARS = (TENANTS.env_var, API_KEYS.env_var, USAGE.env_var, "MAAS_LOCAL_AWS")


@pytest.fixture
def cli(aws, capsys, monkeypatch):
    """Run `maas --local <emulator> ...`: (exit status, stdout, stderr)."""
    for name in TABLE_VARS:
        monkeypatch.delenv(name, raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--local", aws.url, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def store(aws):
    return TenantStore(aws.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name, default_plans())


@pytest.fixture
def meter(aws):
    return Meter(aws.client("dynamodb"), USAGE.local_name)


def _id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _create(cli, name="Acme Corp", plan="pro", tenant_id=None) -> tuple[str, str]:
    """(tenant id, its first key) from `maas tenants create`."""
    tenant_id = tenant_id or _id("acme")
    code, out, err = cli("tenants", "create", name, "--plan", plan, "--id", tenant_id)
    assert code == 0, err
    [key] = KEY.findall(out)
    return tenant_id, key


def _prefix(key: str) -> str:
    return key.rsplit("_", 1)[0]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# --- tenants and keys -------------------------------------------------------------------------------------------


def test_create_prints_the_first_key_once_and_it_authenticates(cli, store):
    tenant_id = _id("acme")
    code, out, _ = cli("tenants", "create", "Acme Corp", "--plan", "pro", "--id", tenant_id)
    assert code == 0
    [key] = KEY.findall(out)
    assert out.count(key) == 1 and "shown ONLY NOW" in out
    assert f"prefix {_prefix(key)}" in out
    tenant, record = store.authenticate(key)
    assert (tenant.tenant_id, tenant.name, tenant.plan, tenant.status) == (tenant_id, "Acme Corp", "pro", "active")
    assert record.prefix == _prefix(key)
    for argv in (("tenants", "show", tenant_id), ("keys", "list", tenant_id), ("tenants", "list")):
        code, out, _ = cli(*argv)
        assert code == 0 and key not in out and not KEY.search(out)


def test_create_without_id_generates_one(cli, store):
    code, out, _ = cli("tenants", "create", "No Id Inc", "--plan", "free")
    assert code == 0
    tenant_id = re.search(r"^tenant\s+(t-[0-9a-f]{12})$", out, re.M).group(1)
    assert store.authenticate(KEY.search(out).group())[0].tenant_id == tenant_id


def test_list_and_show(cli, meter, usage_stream):
    tenant_id, key = _create(cli, name="Listed Ltd", plan="enterprise")
    code, out, _ = cli("tenants", "list")
    assert code == 0
    [row] = [line.split() for line in out.splitlines() if line.startswith(tenant_id)]
    assert row[:5] == [tenant_id, "Listed", "Ltd", "enterprise", "active"]
    now = datetime.now(UTC).timestamp()
    assert meter.put_event(
        UsageEvent(str(uuid.uuid4()), tenant_id, _prefix(key), "minilm", "1", "embeddings", 1234, 3.0, now)
    )[0]
    usage_stream.drain()
    code, out, _ = cli("tenants", "show", tenant_id)
    assert code == 0
    assert re.search(rf"^{re.escape(_prefix(key))}\s+active\s+\S+Z\s+-$", out, re.M)
    assert re.search(r"^minilm@1\s+1,234\s+1\s+3\.0$", out, re.M)
    quota = default_plans()["enterprise"].monthly_quota
    assert f"1,234 of {quota:,} units used, {quota - 1234:,} remaining" in out


def test_suspend_and_resume(cli, store):
    tenant_id, key = _create(cli)
    code, out, _ = cli("tenants", "suspend", tenant_id)
    assert code == 0 and "suspended" in out
    with pytest.raises(Forbidden):
        store.authenticate(key)
    assert re.search(rf"^{tenant_id}\s.*\ssuspended\s", cli("tenants", "list")[1], re.M)
    code, out, _ = cli("tenants", "resume", tenant_id)
    assert code == 0 and "resumed" in out
    assert store.authenticate(key)[0].status == "active"


def test_keys_create_list_revoke_rotate(cli, store):
    tenant_id, first = _create(cli)
    code, out, _ = cli("keys", "create", tenant_id)
    assert code == 0 and "shown ONLY NOW" in out
    [second] = KEY.findall(out)
    assert store.authenticate(second)[1].prefix == _prefix(second)

    code, out, _ = cli("keys", "list", tenant_id)
    assert code == 0 and not KEY.search(out)
    listed = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert set(listed) == {_prefix(first), _prefix(second)}
    assert all(cols[0] == "active" and cols[2] == "-" for cols in listed.values())

    code, out, _ = cli("keys", "revoke", tenant_id, _prefix(first))
    assert code == 0 and "revoked" in out
    with pytest.raises(Unauthorized):
        store.authenticate(first)
    status, created, revoked = cli("keys", "list", tenant_id)[1].split(_prefix(first), 1)[1].split("\n")[0].split()
    assert status == "revoked" and _epoch(revoked) >= _epoch(created)
    code, out, _ = cli("keys", "revoke", tenant_id, _prefix(first))  # again: says so, changes nothing
    assert code == 0 and "already revoked" in out

    code, out, _ = cli("keys", "rotate", tenant_id, _prefix(second))
    assert code == 0
    [third] = KEY.findall(out)
    assert out.count(third) == 1 and third != second
    with pytest.raises(Unauthorized):
        store.authenticate(second)
    assert store.authenticate(third)[0].tenant_id == tenant_id
    assert {k.prefix: k.status for k in store.list_keys(tenant_id)} == {
        _prefix(first): "revoked",
        _prefix(second): "revoked",
        _prefix(third): "active",
    }


def test_rotating_a_wrong_or_revoked_key_makes_no_new_key(cli, store):
    tenant_id, key = _create(cli)
    cli("keys", "revoke", tenant_id, _prefix(key))
    for prefix in ("maas_nosuch00", _prefix(key)):
        code, out, err = cli("keys", "rotate", tenant_id, prefix)
        assert code == 1 and err.startswith("error:") and not KEY.search(out)
    assert [k.prefix for k in store.list_keys(tenant_id)] == [_prefix(key)]


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (("tenants", "show", "no-such-tenant"), 1, "no tenant no-such-tenant"),
        (("tenants", "suspend", "no-such-tenant"), 1, "no tenant no-such-tenant"),
        (("keys", "list", "no-such-tenant"), 1, "no tenant no-such-tenant"),
        (("keys", "create", "no-such-tenant"), 1, "no tenant no-such-tenant"),
        (("tenants", "create", "X", "--plan", "gold"), 2, "unknown plan 'gold'"),
        (("tenants", "create", "X", "--plan", "pro", "--id", "Bad_Id"), 2, "tenant id 'Bad_Id'"),
        (("usage", "report", "--month", "2025-13"), 2, "YYYY-MM"),
        (("usage", "export", "--month", "March", "--format", "csv"), 2, "YYYY-MM"),
        (("usage", "report", "--month", "2025-01", "--tenant", "no-such-tenant"), 1, "no tenant no-such-tenant"),
    ],
)
def test_errors_are_one_message_on_stderr_not_a_traceback(cli, argv, code, message):
    status, out, err = cli(*argv)
    assert status == code
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert out == ""


def test_an_existing_tenant_id_is_refused(cli):
    tenant_id, _ = _create(cli)
    code, out, err = cli("tenants", "create", "Again", "--plan", "pro", "--id", tenant_id)
    assert code == 1 and "already exists" in err and not KEY.search(out)


def test_without_tables_or_local_it_says_how_to_point_the_cli(capsys, monkeypatch):
    for name in TABLE_VARS:
        monkeypatch.delenv(name, raising=False)
    assert main(["tenants", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no tables")
    for hint in ("MAAS_TENANTS_TABLE", "MAAS_API_KEYS_TABLE", "MAAS_USAGE_TABLE", "maas serve", "--local"):
        assert hint in err
    monkeypatch.setenv(TENANTS.env_var, "t")
    assert main(["tenants", "list"]) == 2
    assert "MAAS_API_KEYS_TABLE, MAAS_USAGE_TABLE not set" in capsys.readouterr().err


def test_tables_and_endpoint_from_the_environment(aws, cli, capsys, monkeypatch):
    tenant_id, _ = _create(cli)
    for name, value in aws_env(aws.url).items():
        monkeypatch.setenv(name, value)
    for spec in (TENANTS, API_KEYS, USAGE):
        monkeypatch.setenv(spec.env_var, spec.local_name)
    assert main(["tenants", "show", tenant_id]) == 0  # a deployment: the tables the variables name
    assert tenant_id in capsys.readouterr().out
    for spec in (TENANTS, API_KEYS, USAGE):
        monkeypatch.delenv(spec.env_var)
    monkeypatch.setenv("MAAS_LOCAL_AWS", aws.url)
    assert main(["tenants", "show", tenant_id]) == 0  # the emulator, from MAAS_LOCAL_AWS
    assert main(["tenants", "show", tenant_id, "--local", aws.url]) == 0  # --local after the command
    monkeypatch.setenv(TENANTS.env_var, "maas-no-such-table")
    monkeypatch.delenv("MAAS_LOCAL_AWS")
    for spec in (API_KEYS, USAGE):
        monkeypatch.setenv(spec.env_var, spec.local_name)
    assert main(["tenants", "list"]) == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_an_unreachable_emulator_is_a_message(capsys):
    assert main(["--local", "http://127.0.0.1:9", "tenants", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use DynamoDB") and "Could not connect" in err and "Traceback" not in err


# --- usage: report and exports ----------------------------------------------------------------------------------

MONTH = "2025-02"  # a month only this module records usage in
# (tenant, model, task, units) of every billable call in MONTH. Prices (plans.toml): pro text-embedding 0.02,
# text-classification 0.05; enterprise text-embedding 0.01, image-classification 0.5 USD per million units.
CALLS = [
    ("a", "minilm", "embeddings", 1_234_567),
    ("a", "minilm", "embeddings", 765_433),  # minilm@1: 2,000,000 x 0.02 / 1e6 = 0.04
    ("a", "clf", "classify", 60_000),
    ("a", "clf", "classify", 40_000),  # clf@1: 100,000 x 0.05 / 1e6 = 0.005 exactly -> 0.01 half-up (0.00 half-even)
    ("b", "minilm", "embeddings", 3_333_333),  # 0.03333333 -> 0.03
    ("b", "vit", "image-classify", 12_000),
    ("b", "vit", "image-classify", 345),  # vit@1: 12,345 x 0.5 / 1e6 = 0.0061725 -> 0.01
]
EXPECTED = {
    ("a", "clf@1"): ("text-classification", 100_000, 2, "0.05", "0.01"),
    ("a", "minilm@1"): ("text-embedding", 2_000_000, 2, "0.02", "0.04"),
    ("b", "minilm@1"): ("text-embedding", 3_333_333, 1, "0.01", "0.03"),
    ("b", "vit@1"): ("image-classification", 12_345, 2, "0.5", "0.01"),
}
TOTALS = {"a": (2_100_000, 4, "0.05"), "b": (3_345_678, 3, "0.04")}
GRAND = (5_445_678, 7, "0.09")


@pytest.fixture(scope="module")
def billed(aws, usage_stream):
    """Two tenants made with the CLI (pro, enterprise) and CALLS recorded in MONTH: ({a|b: id}, keys, events)."""
    ids = {"a": _id("inv-a"), "b": _id("inv-b")}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # A comma in a name, to prove the CSV quotes it.
        assert main(["--local", aws.url, "tenants", "create", "Alpha, Inc.", "--plan", "pro", "--id", ids["a"]]) == 0
        assert (
            main(["--local", aws.url, "tenants", "create", "Beta GmbH", "--plan", "enterprise", "--id", ids["b"]]) == 0
        )
    keys = KEY.findall(out.getvalue())
    assert len(keys) == 2
    prefixes = dict(zip(ids, (_prefix(k) for k in keys), strict=True))
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    start = datetime(2025, 2, 3, 9, tzinfo=UTC).timestamp()
    events = []
    for i, (label, model, task, units) in enumerate(CALLS):
        event = UsageEvent(
            f"req-{uuid.uuid4()}", ids[label], prefixes[label], model, "1", task, units, 1.5 + i, start + 3600 * i
        )
        assert meter.put_event(event)[0]
        events.append(event)
    usage_stream.drain()
    return ids, keys, events


def test_usage_report_is_the_events_times_the_plan_prices(cli, billed):
    ids, _, _ = billed
    code, out, err = cli("usage", "report", "--month", MONTH)
    assert code == 0 and "warning" not in err
    rows = [line.split() for line in out.splitlines()[2:]]
    by_tenant = {label: [r for r in rows if r[0] == tenant_id] for label, tenant_id in ids.items()}
    for label, tenant_rows in by_tenant.items():
        lines = {(label, r[2]): (r[3], int(r[4].replace(",", "")), int(r[5]), r[7], r[8]) for r in tenant_rows}
        total = lines.pop((label, "TOTAL"))
        assert lines == {k: v for k, v in EXPECTED.items() if k[0] == label}
        assert (total[1], total[2], total[4]) == TOTALS[label]
    assert all(r[1] == ("pro" if r[0] == ids["a"] else "enterprise") for r in by_tenant["a"] + by_tenant["b"])
    compute = sum(1.5 + i for i, call in enumerate(CALLS) if call[0] == "a")
    assert float(by_tenant["a"][-1][6]) == compute
    [grand] = [r for r in rows if r[0] == "TOTAL"]
    assert (int(grand[4].replace(",", "")), int(grand[5]), grand[8]) == GRAND

    code, out, _ = cli("usage", "report", "--month", MONTH, "--tenant", ids["b"])
    assert code == 0 and ids["a"] not in out and ids["b"] in out
    assert cli("usage", "report", "--month", "2001-01")[1].startswith("no usage in 2001-01")


def test_csv_export_has_exact_amounts_and_totals(cli, billed, tmp_path):
    ids, keys, _ = billed
    code, out, err = cli("usage", "export", "--month", MONTH, "--format", "csv")
    assert code == 0 and "4 invoice lines for 2 tenants" in err
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames == [
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
    ]
    rows = list(reader)
    label = {tenant_id: name for name, tenant_id in ids.items()}
    lines = {
        (label[r["tenant_id"]], r["model"]): (
            r["family"],
            int(r["units"]),
            int(r["requests"]),
            r["unit_price_per_million_usd"],
            r["amount_usd"],
        )
        for r in rows
        if r["model"] != "TOTAL" and r["tenant_id"] != "TOTAL"
    }
    assert lines == EXPECTED
    assert {r["tenant_name"] for r in rows if r["tenant_id"] == ids["a"]} == {"Alpha, Inc."}
    assert all(r["month"] == MONTH for r in rows)
    for name, tenant_id in ids.items():
        [total] = [r for r in rows if r["tenant_id"] == tenant_id and r["model"] == "TOTAL"]
        assert (int(total["units"]), int(total["requests"]), total["amount_usd"]) == TOTALS[name]
        mine = [Decimal(r["amount_usd"]) for r in rows if r["tenant_id"] == tenant_id and r["model"] != "TOTAL"]
        assert sum(mine) == Decimal(total["amount_usd"])
    assert rows[-1]["tenant_id"] == "TOTAL"
    assert (int(rows[-1]["units"]), int(rows[-1]["requests"]), rows[-1]["amount_usd"]) == GRAND
    for key in keys:  # neither a key nor its secret part, only prefixes
        assert key not in out and key.rsplit("_", 1)[1] not in out

    target = tmp_path / "invoice.csv"
    code, written, _ = cli("usage", "export", "--month", MONTH, "--format", "csv", "--out", str(target))
    assert code == 0 and written == "" and target.read_text() == out


def test_cloudevents_export_is_one_valid_event_per_usage_event(cli, billed):
    ids, keys, events = billed
    code, out, err = cli("usage", "export", "--month", MONTH, "--format", "cloudevents")
    assert code == 0 and f"{len(CALLS)} usage events for 2 tenants" in err
    lines = out.splitlines()
    assert len(lines) == len(CALLS)
    parsed = [json.loads(line) for line in lines]
    assert len({e["id"] for e in parsed}) == len(parsed)
    by_id = {e.request_id: e for e in events}
    for ce in parsed:
        assert ce["specversion"] == "1.0" and ce["type"] == "com.maas.usage.recorded"
        assert ce["datacontenttype"] == "application/json"
        event = by_id[ce["id"]]
        assert ce["source"] == f"/maas/{event.tenant_id}" and ce["subject"] == event.tenant_id
        assert ce["time"].endswith("Z") and _epoch(ce["time"]) == pytest.approx(event.time, abs=0.001)
        assert ce["data"] == {
            "tenant_id": event.tenant_id,
            "key_prefix": event.key_prefix,
            "model": event.model,
            "version": event.version,
            "task": event.task,
            "units": event.units,
            "compute_ms": event.compute_ms,
            "request_id": event.request_id,
            "channel": "sync",  # synchronous calls; a Batch API line says "batch" (its own invoice line)
        }
    for key in keys:
        assert key not in out and key.rsplit("_", 1)[1] not in out
    code, out, _ = cli("usage", "export", "--month", MONTH, "--format", "cloudevents", "--tenant", ids["a"])
    assert code == 0 and len(out.splitlines()) == sum(1 for c in CALLS if c[0] == "a")


ADMIN_COMMANDS = [
    ("tenants", "create"),
    ("tenants", "list"),
    ("tenants", "show"),
    ("tenants", "suspend"),
    ("tenants", "resume"),
    ("keys", "create"),
    ("keys", "list"),
    ("keys", "revoke"),
    ("keys", "rotate"),
    ("usage", "report"),
    ("usage", "export"),
]


def test_help_lists_the_admin_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for group in ("tenants", "keys", "usage", "--local"):
        assert group in out


@pytest.mark.parametrize("argv", ADMIN_COMMANDS, ids=" ".join)
def test_every_admin_command_explains_itself(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]  # the paragraph after the usage line
    assert len(description.split()) >= 8
    assert "--local URL" in out and "MAAS_TENANTS_TABLE" in out


def test_on_a_deployment_new_tenants_get_their_usage_plan_key(aws):
    """API Gateway throttles by the usageIdentifierKey the authorizer returns only if an API key with that
    value is attached to the plan's usage plan: tenant creation on a deployment registers it."""
    from maas.tables import API_KEYS, TENANTS
    from maas.tenancy.plans import default_plans
    from maas.tenancy.store import TenancyError, TenantStore, UsagePlanKeys
    from maas.tools.admin import BadArgument, Target, usage_plan_keys

    deployed = Target("t", "k", "u", None)
    with pytest.raises(BadArgument, match="UsagePlanIds"):
        usage_plan_keys(deployed, {}, "tenants create")
    assert usage_plan_keys(deployed, {}, "tenants list") is None

    apigw = aws.client("apigateway")
    plan_id = apigw.create_usage_plan(name="pro")["id"]
    ddb = aws.client("dynamodb")
    store = TenantStore(
        ddb, TENANTS.local_name, API_KEYS.local_name, default_plans(), UsagePlanKeys(apigw, {"pro": plan_id})
    )
    tenant = store.create_tenant("Deployed Co", "pro")
    [key] = apigw.get_usage_plan_keys(usagePlanId=plan_id)["items"]
    assert key["value"] == tenant.usage_key and key["name"] == f"maas-{tenant.tenant_id}"
    # A plan with no usage plan id: refused, and no tenant record is left behind.
    with pytest.raises(TenancyError, match="no usage plan id for plan 'free'"):
        store.create_tenant("Nowhere", "free", tenant_id="nowhere-co")
    assert store.get_tenant("nowhere-co") is None
