"""Unit tests of the demo's pieces (no Home Assistant): config dir, args, flows, processes."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

from homeassistant.util.yaml import parse_yaml
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from demo_lib import cli  # noqa: E402
from demo_lib.configdir import (  # noqa: E402
    MARKER,
    onboarding_seed,
    render_configuration,
    reset_dir,
    write_config_dir,
)
from demo_lib.ha_api import HAError  # noqa: E402
from demo_lib.procs import Supervisor  # noqa: E402
from demo_lib.site_setup import (  # noqa: E402
    ZoneSpec,
    demo_site_spec,
    energy_prefs,
    fill_form,
    zone_for_step,
)


def _gone(pid: int) -> bool:
    """Whether pid no longer runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.split(")")[-1].split()[0] == "Z"


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Poll until pid is gone or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_configuration_is_minimal_offline_and_loopback() -> None:
    """No default_config or internet integrations; HTTP binds loopback on the given port."""
    config = parse_yaml(render_configuration(port=8200))
    assert "default_config" not in config
    assert not {"cloud", "zeroconf", "met", "radio_browser", "mobile_app"} & set(config)
    assert {"frontend", "recorder", "history", "logbook", "sun", "energy", "logger"} <= set(config)
    assert config["http"] == {"server_host": "127.0.0.1", "server_port": 8200}
    assert config["homeassistant"]["time_zone"]
    assert config["homeassistant"]["internal_url"] == "http://127.0.0.1:8200"


def test_onboarding_seed_marks_only_core_config_done() -> None:
    """The user, analytics and integration steps stay for the API; core_config never runs."""
    seed = onboarding_seed()
    assert seed["key"] == "onboarding"
    assert seed["data"] == {"done": ["core_config"]}


def test_config_dir_gets_the_integration_with_symlinks_resolved(tmp_path: Path) -> None:
    """optimizer/ and ml/ become real dirs in the copy; bytecode is left behind."""
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "__pycache__" / "a.cpython-313.pyc").write_bytes(b"\0")
    (src / "manifest.json").write_text('{"domain": "microgrid"}')
    real = tmp_path / "optimizer"
    real.mkdir()
    (real / "policy.py").write_text("X = 1\n")
    (src / "optimizer").symlink_to(real)
    config = tmp_path / "config"
    write_config_dir(config, integration_src=src, port=8123)
    copied = config / "custom_components" / "microgrid"
    assert (copied / "optimizer").is_dir() and not (copied / "optimizer").is_symlink()
    assert (copied / "optimizer" / "policy.py").read_text() == "X = 1\n"
    assert not (copied / "__pycache__").exists()
    assert (config / ".storage" / "onboarding").is_file()
    assert "server_port: 8123" in (config / "configuration.yaml").read_text()


def test_config_dir_refuses_a_folder_without_manifest(tmp_path: Path) -> None:
    """A wrong --integration-dir is a clear error."""
    with pytest.raises(FileNotFoundError, match="manifest"):
        write_config_dir(tmp_path / "c", integration_src=tmp_path, port=8123)


def test_reset_dir_wipes_only_demo_dirs(tmp_path: Path) -> None:
    """A dir with foreign files and no marker is never deleted; a demo dir is recreated empty."""
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="not a demo dir"):
        reset_dir(foreign)
    assert (foreign / "thesis.txt").exists()
    ours = tmp_path / "demo"
    reset_dir(ours)
    (ours / "old.log").write_text("x")
    reset_dir(ours)
    assert sorted(p.name for p in ours.iterdir()) == [MARKER]


def test_parse_args_defaults_and_rejections() -> None:
    """Defaults match the brief; nonsense values stop with a usage error."""
    opts = cli.parse_args([])
    assert (opts.port, opts.sim_port, opts.speed, opts.isolated) == (8123, 9000, 1.0, False)
    assert opts.soc_pct is None and opts.database_url is None
    fast = cli.parse_args(["--isolated", "--speed", "60", "--port", "8200", "--soc", "15"])
    assert (fast.isolated, fast.speed, fast.port, fast.soc_pct) == (True, 60.0, 8200, 15.0)
    for bad in (["--speed", "0"], ["--soc", "120"], ["--port", "x"]):
        with pytest.raises(SystemExit):
            cli.parse_args(bad)


def test_credentials_come_from_the_environment_with_defaults() -> None:
    """DEMO_* variables override the printed defaults; admin and household must differ."""
    admin, household = cli.credentials_from_env({})
    assert (admin.username, admin.password) == ("admin", "admin-demo-pass")
    assert (household.username, household.password) == ("household", "household-demo-pass")
    admin, household = cli.credentials_from_env(
        {"DEMO_ADMIN_USER": "ops", "DEMO_HOUSEHOLD_PASSWORD": "s3cret-pass"}
    )
    assert admin.username == "ops" and household.password == "s3cret-pass"
    with pytest.raises(cli.DemoError):
        cli.credentials_from_env({"DEMO_ADMIN_USER": "x", "DEMO_HOUSEHOLD_USER": "x"})


def test_fill_form_sends_only_declared_fields() -> None:
    """Fields the form does not declare, and empty optional text, are left out."""
    schema = [{"name": "name"}, {"name": "household"}, {"name": "rated_w"}]
    assert fill_form(schema, {"name": "Homes", "household": "", "extra": 1, "rated_w": 4.0}) == {
        "name": "Homes",
        "rated_w": 4.0,
    }


def test_zone_step_is_matched_by_its_node_placeholder() -> None:
    """The zone form names its node; the demo answers for that node, else goes by order."""
    zones = (
        ZoneSpec(zone_id="Zone1", name="A", priority="critical", rated_w=1, schedule="always"),
        ZoneSpec(zone_id="Zone2", name="B", priority="deferrable", rated_w=1, schedule="day"),
    )
    step = {"description_placeholders": {"zone_id": "Zone2", "index": "1"}}
    assert zone_for_step(step, zones, 0).name == "B"
    assert zone_for_step({}, zones, 1).name == "B"
    with pytest.raises(HAError):
        zone_for_step({}, zones, 2)


def test_energy_prefs_pick_site_solar_and_zone_energy() -> None:
    """Solar energy and the battery are sources; zone energy sensors (on subentries) are
    devices; power is not."""
    registry = [
        {
            "entity_id": "sensor.site_battery_in",
            "platform": "microgrid",
            "unique_id": "e1_battery_charge_energy",
            "config_subentry_id": None,
        },
        {
            "entity_id": "sensor.site_battery_out",
            "platform": "microgrid",
            "unique_id": "e1_battery_discharge_energy",
            "config_subentry_id": None,
        },
        {
            "entity_id": "sensor.site_solar_energy",
            "platform": "microgrid",
            "unique_id": "e1_solar_energy",
            "config_subentry_id": None,
        },
        {
            "entity_id": "sensor.site_consumption",
            "platform": "microgrid",
            "unique_id": "e1_consumption_energy",
            "config_subentry_id": None,
        },
        {
            "entity_id": "sensor.pump_energy",
            "platform": "microgrid",
            "unique_id": "e1_Zone4_energy",
            "config_subentry_id": "s4",
        },
        {
            "entity_id": "sensor.pump_power",
            "platform": "microgrid",
            "unique_id": "e1_Zone4_power",
            "config_subentry_id": "s4",
        },
        {
            "entity_id": "sensor.other_energy",
            "platform": "other",
            "unique_id": "x",
            "config_subentry_id": "s9",
        },
    ]
    states = [
        {
            "entity_id": e["entity_id"],
            "attributes": {"device_class": "power" if "power" in e["entity_id"] else "energy"},
        }
        for e in registry
    ]
    prefs = energy_prefs(registry, states)
    assert prefs["energy_sources"] == [
        {
            "type": "solar",
            "stat_energy_from": "sensor.site_solar_energy",
            "config_entry_solar_forecast": None,
        },
        {
            "type": "battery",
            "stat_energy_from": "sensor.site_battery_out",
            "stat_energy_to": "sensor.site_battery_in",
        },
    ]
    assert prefs["device_consumption"] == [{"stat_consumption": "sensor.pump_energy"}]
    assert "energy_sources" not in energy_prefs([], [])


def test_demo_site_spec_mirrors_the_simulated_site() -> None:
    """The config flow answers come from sim/site.py; Zone3 belongs to the household."""
    from sim.site import DEMO_SITE

    spec = demo_site_spec()
    assert [z.zone_id for z in spec.zones] == [z.zone_id for z in DEMO_SITE.zones]
    assert [(z.name, z.priority, z.rated_w) for z in spec.zones] == [
        (z.name, z.priority, z.rated_w) for z in DEMO_SITE.zones
    ]
    assert spec.zones[0].priority == "critical"
    assert {z.zone_id: z.household for z in spec.zones if z.household} == {"Zone3": "Homes"}
    assert spec.household_name == "Homes"


def test_port_free_sees_a_bound_port(socket_enabled: None) -> None:
    """A listening loopback port is reported busy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert cli.port_free(sock.getsockname()[1]) is False


def test_supervisor_stops_children_and_grandchildren(tmp_path: Path) -> None:
    """stop_all ends the child and what it started (its process group): no orphans."""
    sup = Supervisor(log_dir=tmp_path)
    child = sup.spawn(
        "tree", ["sh", "-c", "sleep 300 & echo $!; wait"], env=dict(os.environ), cwd=tmp_path
    )
    deadline = time.monotonic() + 10
    while not (text := child.log_path.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(text)
    assert os.getpgid(grandchild) == child.pid
    sup.stop_all(timeout_s=5)
    assert _wait_gone(child.pid) and _wait_gone(grandchild)
    assert sup.exited() is child


def test_children_die_with_a_killed_demo(tmp_path: Path) -> None:
    """Even a SIGKILLed demo leaves nothing behind: children get SIGTERM from the kernel."""
    code = (
        "import sys, os, time; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from demo_lib.procs import Supervisor;"
        "s = Supervisor(log_dir=Path(sys.argv[2]));"
        "c = s.spawn('sleeper', ['sleep', '300'], env=dict(os.environ), cwd=Path(sys.argv[2]));"
        "print(c.pid, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT / "scripts"), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    sleeper = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_gone(sleeper)


async def test_forward_pipes_bytes_both_ways(socket_enabled: None) -> None:
    """A host-side listener carries a request to the inner port and the answer back."""
    import asyncio

    from demo_lib.forward import bind_listeners, export_listeners, import_listeners, serve_forward

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    bound = bind_listeners([0])
    listener_port = bound[0].getsockname()[1]
    # Round-trip through the env format used across the exec (which drops the old objects).
    spec = export_listeners(bound)
    for sock in bound.values():
        sock.detach()
    listeners = import_listeners(spec)
    server = await serve_forward(listeners[0], target_port)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener_port)
    writer.write(b"ping")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(100), 5) == b"PING"
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # upstream close reaches us
    writer.close()
    server.close()
    target.close()
    await server.wait_closed()
    await target.wait_closed()


def test_bind_listeners_reports_a_busy_port(socket_enabled: None) -> None:
    """A port already taken on the host is an OSError before anything starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        from demo_lib.forward import bind_listeners

        with pytest.raises(OSError):
            bind_listeners([sock.getsockname()[1]])


def test_a_short_command_secret_stops_the_demo_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, socket_enabled: None
) -> None:
    """The config flow would refuse it; the demo says so up front and creates nothing."""
    monkeypatch.setenv("DEMO_COMMAND_SECRET", "short")
    state = tmp_path / "demo"
    assert cli.main(["--dir", str(state), "--port", "1", "--sim-port", "2"]) == 1
    assert not state.exists()
