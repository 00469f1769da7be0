"""Deployments for real: a Prefect server on loopback, `winnow serve` as its own process, runs started from the
API with custom parameters (what the UI does), from `prefect deployment run`, and from a cron schedule; their
artifacts read back through the API, and the run's page opened in headless Chromium."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flows.config import load_config
from flows.rft import RFTConfig
from deploy_helpers import _artifact_keys, _serve, _stop, _wait_for_deployment, _wait_for_run
from net import free_port
from winnow.deployments import build_deployments, read_deployments
from winnow.prefect_server import local_prefect_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
                  "--window-size=1400,1400"]



def _screenshot_run_page(ui_url: str, run, out: Path) -> str:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={out.parent / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        driver.get(f"{ui_url}/runs/flow-run/{run.id}")
        wait = WebDriverWait(driver, 60)
        wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), run.name))
        tab = wait.until(lambda d: next((t for t in d.find_elements(By.CSS_SELECTOR, "li.p-tab")
                                         if t.text.strip() == "Artifacts"), False))
        driver.execute_script("arguments[0].click()", tab)  # the run page's tab list (Prefect UI v1)
        wait.until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), "rft-report"))
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        driver.save_screenshot(str(out))
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()


@pytest.mark.reuses_smoke_runs
def test_deployments_run_from_the_api_the_cli_and_the_schedule_and_show_in_the_ui(tmp_path, warm_rft_store):
    assert shutil.which("chromium") and shutil.which("chromedriver"), "make setup installs chromium + chromium-driver"
    port, store = free_port(), tmp_path / "store"
    warm_rft_store(store)  # what is tested here is how runs start and show, not the stages again
    # one `winnow serve` for both deployments from the start, so the cron minute passes while the other runs do
    served = tmp_path / "deployments.yaml"
    served.write_text(yaml.safe_dump({"deployments": [
        {"name": "rft-smoke", "flow": "rft", "config": "smoke", "overrides": ["eval.maj=null"]},
        {"name": "rft-minutely", "flow": "rft", "config": "smoke", "overrides": ["eval.maj=null"],
         "schedules": [{"cron": "* * * * *", "timezone": "UTC"}]}]}))
    server_env = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    with local_prefect_server("127.0.0.1", port, home=str(tmp_path / "prefect"), extra_env=server_env) as api_url:
        from prefect.client.orchestration import get_client

        async def scenario():
            async with get_client() as client:
                serving = _serve(served, store, api_url, tmp_path / "serve.log")
                deployment = await _wait_for_deployment(client, "rft/rft-smoke", serving, tmp_path / "serve.log")
                minutely = await _wait_for_deployment(client, "rft/rft-minutely", serving, tmp_path / "serve.log")
                assert minutely.schedules and minutely.schedules[0].schedule.timezone == "UTC"
                # the UI's "custom run": edited parameters, validated against RFTConfig by the API
                params = deployment.parameters["cfg"] | {"title": "RFT smoke, started from the API"}
                with pytest.raises(Exception, match="temprature|parameters"):
                    await client.create_flow_run_from_deployment(deployment.id, parameters={
                        "cfg": params | {"sample": params["sample"] | {"sampling": {"temprature": 2}}}})
                flow_run = await client.create_flow_run_from_deployment(deployment.id, parameters={"cfg": params})
                run = await _wait_for_run(client, flow_run.id)
                assert run.state.is_completed(), run.state
                keys = await _artifact_keys(client, run.id)
                assert {"accuracy", "rft-report"} <= keys  # train-* too when it trains (tests/flows/test_rft_smoke.py)
                cli = subprocess.run([sys.executable, "-m", "prefect", "deployment", "run", "rft/rft-smoke", "--watch"],
                                     env=os.environ | {"PREFECT_API_URL": api_url}, capture_output=True, text=True,
                                     timeout=600)
                assert cli.returncode == 0 and "Completed" in cli.stdout, cli.stdout[-2000:] + cli.stderr[-2000:]

                body = _screenshot_run_page(api_url.removesuffix("/api"), run, tmp_path / "run.png")
                assert run.name in body and "Completed" in body and "rft-report" in body and "accuracy" in body
                assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

                from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

                deadline = time.time() + 300
                while time.time() < deadline:
                    runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                        id=DeploymentFilterId(any_=[minutely.id])))
                    done = [r for r in runs if r.auto_scheduled and r.state and r.state.is_completed()]
                    if done:
                        break
                    await asyncio.sleep(3)
                else:
                    raise AssertionError(f"no scheduled run completed: {[(r.name, r.state_name) for r in runs]}")
                assert _stop(serving) in (0, -signal.SIGTERM, 143)

        asyncio.run(scenario())


def test_shipped_deployments_build_with_validated_configs_and_time_zones():
    from winnow.cli import _flows

    specs = read_deployments()
    deployments = build_deployments(specs, _flows(), store_url="s3://bucket/prefix")
    by_name = {d.name: d for d in deployments}
    assert {"rft-weekly", "evaluate-nightly", "reward-model", "rrtf", "rft-smoke"} <= set(by_name)
    weekly = by_name["rft-weekly"]
    assert weekly.schedules[0].schedule.timezone == "Europe/Berlin" and weekly.schedules[0].schedule.cron == "0 6 * * 1"
    cfg = RFTConfig.model_validate(weekly.parameters["cfg"])  # the parameters are a valid config
    assert cfg == load_config(RFTConfig, "rft", "default", ["store.url=s3://bucket/prefix"])
    json.dumps(weekly.parameters)  # JSON, as the API stores them


def test_a_bad_deployment_config_fails_before_registering(tmp_path):
    from flows.config import ConfigError
    from winnow.cli import _flows

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"deployments": [{"name": "x", "flow": "rft", "config": "smoke",
                                                    "overrides": ["base_sft.optim.steps=many"]}]}))
    with pytest.raises(ConfigError, match=r"base_sft\.optim\.steps"):
        build_deployments(read_deployments(bad), _flows())
    zone = tmp_path / "zone.yaml"
    zone.write_text(yaml.safe_dump({"deployments": [{"name": "x", "flow": "rft", "config": "smoke",
                                                     "schedules": [{"cron": "0 3 * * *", "timezone": "Mars/Base"}]}]}))
    with pytest.raises(Exception, match="Mars/Base"):
        build_deployments(read_deployments(zone), _flows())
