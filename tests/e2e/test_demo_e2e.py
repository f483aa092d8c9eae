"""End to end: the real demo stack (sim + Home Assistant) checked as the household user."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
ZONES = ("Zone1", "Zone2", "Zone3", "Zone4")


def test_demo_reaches_ready_with_the_configured_logins(demo_up: dict) -> None:
    """READY is the first stdout line, followed by the logins the environment asked for."""
    stdout = demo_up["stdout"]
    assert stdout[0] == "READY http://127.0.0.1:8123"
    assert "admin user: e2e-admin" in stdout
    assert "household user: e2e-villager" in stdout
    assert demo_up["missing_requirements"] == [], demo_up["_failure"]


def test_only_offline_integrations_were_added(demo_up: dict) -> None:
    """No met/radio_browser/google_translate/shopping_list; the microgrid entry is loaded."""
    assert demo_up["unwanted_entries"] == [], demo_up["_failure"]
    assert ["microgrid", "loaded"] in demo_up["entries"], demo_up["_failure"]


def test_energy_dashboard_shows_solar_and_the_zones(demo_up: dict) -> None:
    """The demo points the Energy dashboard at the site's solar, its battery and the four
    zones' energy."""
    assert demo_up["energy_sources"] == ["solar", "battery"], demo_up["_failure"]
    assert demo_up["energy_devices"] == 4, demo_up["_failure"]


def test_household_sees_the_four_zone_switches(demo_up: dict) -> None:
    """The non-admin household user sees one switch per zone, each with a state."""
    assert demo_up["household_is_admin"] is False
    assert sorted(demo_up["switches"]) == list(ZONES), demo_up["_failure"]
    assert sorted(demo_up["household_switches"]) == sorted(demo_up["switches"].values())
    initial = demo_up["household_states_initial"]
    assert all(initial[z] is not None for z in ZONES), demo_up["_failure"]


def test_household_cannot_turn_the_critical_zone_off(demo_up: dict) -> None:
    """The household's turn_off on Zone1 is refused; the zone stays on and no OFF is written."""
    assert demo_up["zone1_on_before"], demo_up["_failure"]
    assert demo_up["critical_off_error"], demo_up["_failure"]
    assert demo_up["zone1_after_household_off"] == "on", demo_up["_failure"]
    assert demo_up["zone1_command_after_household_off"] != "OFF", demo_up["_failure"]


def test_household_membership_decides_who_switches_zone_3(demo_up: dict) -> None:
    """The demo made the household user a member of "Homes": they may switch Zone3, others not."""
    assert demo_up["zone3_on_by_member_error"] is None, demo_up["_failure"]
    assert demo_up["zone3_on_by_outsider_error"], demo_up["_failure"]


def test_low_battery_sheds_zones_2_to_4_and_keeps_zone_1(demo_up: dict) -> None:
    """An 8 % reading: switches and RTDB commands show Zones 2-4 off while Zone 1 stays on."""
    # Which of Zones 2-4 were on before depends on the hour (schedules, the planner).
    assert demo_up["states_before_low"]["Zone1"] == "on", demo_up["_failure"]
    assert demo_up["shed"], demo_up["_failure"]
    assert demo_up["states_after_low"]["Zone1"] == "on"
    assert {demo_up["states_after_low"][z] for z in ZONES[1:]} == {"off"}
    assert {demo_up["commands_after_low"][z] for z in ZONES[1:]} == {"OFF"}


def test_household_cannot_restore_its_zone_in_the_emergency_band(demo_up: dict) -> None:
    """Below 10 % the household's turn_on of its own zone leaves it off (state and command)."""
    assert demo_up["zone3_after_emergency_on"] == "off", demo_up["_failure"]
    assert demo_up["zone3_command_after_emergency_on"] == "OFF", demo_up["_failure"]


def test_commands_are_signed_with_the_site_secret(demo_up: dict) -> None:
    """Every command in the RTDB carries an HS256 signature made with the demo's secret."""
    assert demo_up["sig_valid"], demo_up["_failure"]
    assert all(v is True for v in demo_up["sig_valid"].values()), demo_up["sig_valid"]


def test_demo_stops_every_process_it_started(demo_result: dict) -> None:
    """SIGTERM to the demo stops Home Assistant and the sim too (no orphans), exit 0."""
    assert set(demo_result["children"]) == {"hass", "sim"}, demo_result["_failure"]
    assert demo_result["survivors"] == {}, demo_result["_failure"]
    assert demo_result["demo_exit"] == 0, demo_result["_failure"]


def test_the_integration_logged_no_errors(demo_up: dict) -> None:
    """The whole run (start, flows, shedding, refusals) left no ERROR from the integration."""
    assert demo_up["integration_errors"] == [], demo_up["_failure"]


def test_home_assistant_logged_no_errors(demo_up: dict) -> None:
    """No core integration failed to set up under the demo's config (HA runs with --skip-pip:
    the base platforms' requirements are pre-installed) and nothing else logged an error."""
    assert demo_up["core_errors"] == [], demo_up["_failure"]


def test_no_deprecation_reported_for_the_integration(demo_up: dict) -> None:
    """On the newest Home Assistant, nothing the integration does is reported as deprecated."""
    assert demo_up["deprecations"] == [], demo_up["_failure"]


def test_http_settings_are_confirmed(demo_up: dict) -> None:
    """HA 2026.8+ stages YAML http: settings as pending and reverts them (restarting HA on all
    interfaces) after 5 minutes unless confirmed: the demo confirms them."""
    assert demo_up["http_pending"] is None, demo_up["_failure"]
    assert demo_up["http_revert_at"] is None, demo_up["_failure"]
