#!/usr/bin/env python3
"""Validate clipforge's Prometheus config, alert rules, their unit tests and the Grafana
dashboards. Exits 0 when everything is valid, 1 with one line per problem otherwise.

Checks:

1. ``promtool check config prometheus/prometheus.yml`` (also checks the rule files it
   loads), ``promtool check rules prometheus/alerts.yml`` and
   ``promtool test rules prometheus/alerts_test.yml``.
2. Every alert in alerts.yml has a unit-test case where it fires and one where it does
   not; prometheus.yml loads alerts.yml and scrapes the worker and the Pushgateway.
3. Grafana dashboards (``grafana/*.json``): schemaVersion, unique dashboard uids,
   datasource variables, and every panel has a title, type, gridPos and targets; a
   Prometheus target has an ``expr``, a PostgreSQL target a ``rawSql``.
4. Every PromQL expression in the dashboards parses (written to a temporary file as
   recording rules and checked with ``promtool check rules``).
5. Every metric name used by the alerts and dashboards exists in
   ``clipforge.metrics.REGISTRY`` (counters as ``<name>_total``, histograms as
   ``_bucket``/``_sum``/``_count``), or is one Prometheus/Pushgateway provides itself.

Usage: ``python deployments/check_observability.py [--promtool PATH]`` (run from
anywhere; needs the clipforge package importable, e.g. ``.venv/bin/python``).
promtool comes with Debian's ``prometheus`` package.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class Layout:
    """Where the files are: ``base/prometheus/*.yml`` and ``base/grafana/*.json``."""

    def __init__(self, base: Path) -> None:
        self.prom_dir = base / "prometheus"
        self.grafana_dir = base / "grafana"
        self.prometheus_yml = self.prom_dir / "prometheus.yml"
        self.alerts_yml = self.prom_dir / "alerts.yml"
        self.alerts_test_yml = self.prom_dir / "alerts_test.yml"


PROMTOOL_APT = "apt-get install -y prometheus"

# Series that Prometheus or the Pushgateway create themselves (not in REGISTRY).
BUILTIN_SERIES = frozenset({
    "up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE",
    "push_time_seconds", "push_failure_time_seconds",
})

# PromQL words that look like identifiers but are not metric names.
PROMQL_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan", "start", "end",
})

# Grafana template variables replaced by a duration before promtool sees an expression.
GRAFANA_DURATIONS = {
    "$__rate_interval": "5m", "${__rate_interval}": "5m", "$__interval": "1m",
    "${__interval}": "1m", "$__range": "1d", "${__range}": "1d",
}

PROMETHEUS_DS_TYPES = frozenset({"prometheus"})
POSTGRES_DS_TYPES = frozenset({"grafana-postgresql-datasource", "postgres"})
GRIDPOS_KEYS = ("h", "w", "x", "y")


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- promtool


def find_promtool(explicit: str | None) -> str | None:
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("promtool") or next(
        (p for p in ("/usr/bin/promtool", "/usr/local/bin/promtool") if Path(p).is_file()),
        None)


def run_promtool(promtool: str, args: list[str], cwd: Path, problems: Problems,
                 what: str) -> bool:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
            check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        problems.add(what, f"promtool {' '.join(args)} could not run: {exc}")
        return False
    if proc.returncode != 0:
        out = "\n    ".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        problems.add(what, f"`promtool {' '.join(args)}` failed (exit {proc.returncode}):\n"
                     f"    {out}")
        return False
    return True


# --------------------------------------------------------------------------- metric names


def registry_names() -> set[str]:
    """Every series name clipforge.metrics.REGISTRY can expose."""
    sys.path.insert(0, str(REPO))
    from clipforge.metrics import REGISTRY

    names: set[str] = set()
    for family in REGISTRY.collect():
        base = family.name
        if family.type == "counter":
            names.update({base + "_total", base + "_created"})
        elif family.type == "histogram":
            names.update({base + s for s in ("_bucket", "_sum", "_count", "_created")})
        elif family.type == "summary":
            names.update({base, base + "_sum", base + "_count", base + "_created"})
        else:
            names.add(base)
        names.update(s.name for s in family.samples)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, keywords or label names)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"#[^\n]*", " ", text)  # comments
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"@\s*[\w.()]+", " ", text)
    names = set()
    for m in _IDENT.finditer(text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def check_names(where: str, expr: str, known: set[str], problems: Problems) -> None:
    for name in sorted(metric_names(expr)):
        if name in known or name in BUILTIN_SERIES:
            continue
        hint = ""
        if name.startswith("clipforge_"):
            close = sorted(n for n in known if n.startswith(name.rsplit("_", 1)[0]))
            hint = f" (did you mean {', '.join(close[:4])}?)" if close else ""
        problems.add(where, f"metric {name!r} is not in clipforge.metrics.REGISTRY{hint}; "
                     f"expr: {' '.join(expr.split())}")


# --------------------------------------------------------------------------- prometheus


def load_yaml(path: Path, problems: Problems) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        problems.add(rel(path), f"cannot read YAML: {exc}")
        return None


def alert_rules(doc: Any) -> list[dict[str, Any]]:
    rules = []
    for group in (doc or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if isinstance(rule, dict) and "alert" in rule:
                rules.append(rule)
    return rules


def check_prometheus_files(lay: Layout, problems: Problems) -> list[dict[str, Any]]:
    cfg = load_yaml(lay.prometheus_yml, problems) or {}
    where = rel(lay.prometheus_yml)
    if lay.alerts_yml.name not in (cfg.get("rule_files") or []):
        problems.add(where, f"rule_files must load {lay.alerts_yml.name}")
    jobs = {j.get("job_name"): j for j in cfg.get("scrape_configs") or []}
    targets = {job: [t for sc in j.get("static_configs") or [] for t in sc.get("targets") or []]
               for job, j in jobs.items()}
    if not any("127.0.0.1:9464" in t for t in targets.values()):
        problems.add(where, "no scrape job for the `clipforge metrics` worker (127.0.0.1:9464)")
    push_jobs = [job for job, t in targets.items() if "127.0.0.1:9091" in t]
    if not push_jobs:
        problems.add(where, "no scrape job for the Pushgateway (127.0.0.1:9091)")
    elif not all(jobs[j].get("honor_labels") is True for j in push_jobs):
        problems.add(where, "the Pushgateway scrape job needs honor_labels: true")

    rules = alert_rules(load_yaml(lay.alerts_yml, problems))
    if not rules:
        problems.add(rel(lay.alerts_yml), "no alert rules")
    tests = load_yaml(lay.alerts_test_yml, problems) or {}
    fires: set[str] = set()
    silent: set[str] = set()
    for case in tests.get("tests") or []:
        for t in case.get("alert_rule_test") or []:
            (fires if t.get("exp_alerts") else silent).add(str(t.get("alertname")))
    for rule in rules:
        name = rule["alert"]
        if name not in fires:
            problems.add(rel(lay.alerts_test_yml), f"no test case where {name} fires")
        if name not in silent:
            problems.add(rel(lay.alerts_test_yml), f"no test case where {name} does not fire")
    for name in sorted((fires | silent) - {r["alert"] for r in rules}):
        problems.add(rel(lay.alerts_test_yml), f"tests an alert that alerts.yml lacks: {name}")
    return rules


# --------------------------------------------------------------------------- grafana


def iter_panels(panels: list[Any]) -> Iterator[Any]:
    for p in panels:
        yield p
        if isinstance(p, dict) and isinstance(p.get("panels"), list):  # collapsed rows
            yield from iter_panels(p["panels"])


def ds_of(obj: dict[str, Any], fallback: Any) -> Any:
    return obj.get("datasource") or fallback


def check_dashboard(path: Path, problems: Problems,
                    exprs: list[tuple[str, str]]) -> str | None:
    where = rel(path)
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        problems.add(where, f"not valid JSON: {exc}")
        return None
    if not isinstance(dash, dict):
        problems.add(where, "a dashboard is a JSON object")
        return None
    for key in ("uid", "title"):
        if not isinstance(dash.get(key), str) or not dash[key].strip():
            problems.add(where, f"missing dashboard {key}")
    if not isinstance(dash.get("schemaVersion"), int):
        problems.add(where, "missing integer schemaVersion")
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []
                 if isinstance(v, dict)}
    ds_vars = {str(n) for n, v in variables.items() if v.get("type") == "datasource"}
    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        problems.add(where, "no panels")
        return dash.get("uid") if isinstance(dash.get("uid"), str) else None
    ids: set[Any] = set()
    for n, panel in enumerate(iter_panels(panels)):
        if not isinstance(panel, dict):
            problems.add(where, f"panel #{n} is not an object")
            continue
        pwhere = f"{where}: panel {panel.get('id', '#' + str(n))} {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.add(pwhere, "duplicate panel id")
        ids.add(panel.get("id"))
        for key in ("title", "type"):
            if not isinstance(panel.get(key), str) or not panel[key].strip():
                problems.add(pwhere, f"missing {key}")
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(
                isinstance(grid.get(k), int) and not isinstance(grid.get(k), bool)
                for k in GRIDPOS_KEYS):
            problems.add(pwhere, "gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > 24:
            problems.add(pwhere, "gridPos x + w is over 24 columns")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.add(pwhere, "no targets")
            continue
        refs: set[Any] = set()
        for target in targets:
            if not isinstance(target, dict):
                problems.add(pwhere, "a target is not an object")
                continue
            twhere = f"{pwhere} target {target.get('refId')}"
            if not target.get("refId") or target.get("refId") in refs:
                problems.add(twhere, "missing or duplicate refId")
            refs.add(target.get("refId"))
            ds = ds_of(target, ds_of(panel, None))
            if not isinstance(ds, dict):
                problems.add(twhere, "no datasource ({type, uid}) on the target or panel")
                continue
            uid = str(ds.get("uid") or "")
            m = re.fullmatch(r"\$\{?(\w+)\}?", uid)
            if not m or m.group(1) not in ds_vars:
                problems.add(twhere, f"datasource uid {uid!r} is not one of this "
                             f"dashboard's datasource variables {sorted(ds_vars)}")
            dstype = ds.get("type")
            if dstype in PROMETHEUS_DS_TYPES:
                expr = target.get("expr")
                if not isinstance(expr, str) or not expr.strip():
                    problems.add(twhere, "Prometheus target without expr")
                else:
                    exprs.append((twhere, expr))
            elif dstype in POSTGRES_DS_TYPES:
                raw = target.get("rawSql")
                if not isinstance(raw, str) or "video_job" not in raw:
                    problems.add(twhere, "PostgreSQL target needs a rawSql on video_job")
            else:
                problems.add(twhere, f"unsupported datasource type {dstype!r}")
    return dash.get("uid") if isinstance(dash.get("uid"), str) else None


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_DURATIONS.items():
        expr = expr.replace(var, value)
    return expr


def check_exprs_with_promtool(promtool: str, exprs: list[tuple[str, str]],
                              problems: Problems) -> None:
    """Each expression as a recording rule in its own group, named after where it is."""
    if not exprs:
        return
    groups = []
    for n, (where, expr) in enumerate(exprs):
        groups.append({"name": f"{n}: {where}", "rules": [
            {"record": f"clipforge_dashboard:expr_{n}", "expr": grafana_to_promql(expr)}]})
    with tempfile.TemporaryDirectory(prefix="clipforge-obs-") as tmp:
        path = Path(tmp) / "dashboard_exprs.rules.yml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
        run_promtool(promtool, ["check", "rules", str(path)], Path(tmp), problems,
                     "dashboard PromQL")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--promtool", help="path of promtool (default: on PATH)")
    ap.add_argument("--dir", type=Path, default=HERE,
                    help="folder holding prometheus/ and grafana/ (default: this script's)")
    args = ap.parse_args(argv)
    lay = Layout(args.dir.resolve())
    problems = Problems()

    promtool = find_promtool(args.promtool)
    if promtool is None:
        problems.add("promtool", f"not found{' at ' + args.promtool if args.promtool else ''};"
                     f" remedy: {PROMTOOL_APT} (Debian 12 package `prometheus`)")
    else:
        run_promtool(promtool, ["check", "config", lay.prometheus_yml.name], lay.prom_dir, problems,
                     rel(lay.prometheus_yml))
        run_promtool(promtool, ["check", "rules", lay.alerts_yml.name], lay.prom_dir, problems,
                     rel(lay.alerts_yml))
        run_promtool(promtool, ["test", "rules", lay.alerts_test_yml.name], lay.prom_dir, problems,
                     rel(lay.alerts_test_yml))

    rules = check_prometheus_files(lay, problems)
    known = registry_names()
    for rule in rules:
        check_names(f"{rel(lay.alerts_yml)}: {rule['alert']}", str(rule.get("expr", "")), known,
                    problems)

    dashboards = sorted(lay.grafana_dir.glob("*.json"))
    if not dashboards:
        problems.add(rel(lay.grafana_dir), "no dashboards (*.json)")
    exprs: list[tuple[str, str]] = []
    uids: dict[str, Path] = {}
    for path in dashboards:
        uid = check_dashboard(path, problems, exprs)
        if uid is not None:
            if uid in uids:
                problems.add(rel(path), f"dashboard uid {uid!r} is also used by "
                             f"{rel(uids[uid])}")
            uids[uid] = path
    for where, expr in exprs:
        check_names(where, grafana_to_promql(expr), known, problems)
    if promtool is not None:
        check_exprs_with_promtool(promtool, exprs, problems)

    if problems.items:
        print(f"check_observability: {len(problems.items)} problem(s):", file=sys.stderr)
        for item in problems.items:
            print(f"  - {item}", file=sys.stderr)
        return 1
    print(f"check_observability: OK: prometheus.yml, {len(rules)} alerts (unit tests pass), "
          f"{len(dashboards)} dashboards with {len(exprs)} PromQL expressions; every metric "
          "name is in clipforge.metrics.REGISTRY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
