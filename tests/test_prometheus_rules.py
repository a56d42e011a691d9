"""The shipped Prometheus files (docs/prometheus/) pass promtool: config, rules, rule unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.system import find_binary, require_binary

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "docs" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
EXPECTED_ALERTS = {"ImserverDown", "ImserverHeartbeatTerminationsRising", "ImserverReconnectStorm",
                   "ImserverNoConnections",
                   "ImserverBrokerDown", "ImserverBrokerDeaf", "ImserverBrokerLagHigh"}

@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool")


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                          cwd=PROMETHEUS_DIR)


@pytest.mark.prometheus
def test_promtool_check_config_passes_on_the_shipped_config(promtool):
    result = run(promtool, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout  # alerts.yml was found and checked
    assert result.stderr == ""


@pytest.mark.prometheus
def test_promtool_check_rules_passes_on_the_shipped_rules(promtool):
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout
    assert result.stderr == ""


@pytest.mark.prometheus
def test_promtool_test_rules_fires_the_alerts_on_synthetic_series(promtool):
    result = run(promtool, "test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_rejects_a_broken_rule(promtool, tmp_path):
    """The checks above can fail: promtool does look at the expressions."""
    rules = yaml.safe_load(ALERTS.read_text())
    rules["groups"][0]["rules"][0]["expr"] = "sum by (instance) (rate(imserver_connections[5m]"
    broken = tmp_path / "alerts.yml"
    broken.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(broken))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_config_scrapes_imserver_and_rules_cover_the_issue():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "imserver"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]

    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    exprs = {rule["alert"]: rule["expr"] for rule in rules}
    assert 'reason="heartbeat_timeout"' in exprs["ImserverHeartbeatTerminationsRising"]
    assert "imserver_reconnects_total" in exprs["ImserverReconnectStorm"]
    assert "imserver_connections" in exprs["ImserverNoConnections"]
    assert 'up{job="imserver"}' in exprs["ImserverDown"]
    assert "imserver_broker_connected" in exprs["ImserverBrokerDown"]
    assert "imserver_broker_deaf_total" in exprs["ImserverBrokerDeaf"]
    assert "imserver_broker_lag_seconds_bucket" in exprs["ImserverBrokerLagHigh"]


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_missing_binary_skips_off_ci_with_a_hint(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="`make system-deps` installs it"):
        require_binary("imserver-no-such-binary")


def test_missing_binary_fails_on_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="imserver-no-such-binary is not installed"):
        require_binary("imserver-no-such-binary")


def test_present_binary_is_found_by_absolute_path(monkeypatch):
    monkeypatch.setenv("CI", "true")
    path = require_binary("sh")
    assert Path(path).is_absolute() and path == find_binary("sh")
