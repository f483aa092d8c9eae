"""The default demo site (one board per zone, as in the original); the demo script reads it."""

from __future__ import annotations

from .physics import BatterySpec, SiteSpec, SolarSpec, ZoneSpec

DEMO_NAMESPACE = "demo"
DEMO_SOC_PCT = 80.0
DEMO_POWER_LIMIT_W = 1000.0  # inverter limit the integration is configured with

DEMO_SITE = SiteSpec(
    battery=BatterySpec(
        capacity_wh=5000.0,
        nominal_voltage_v=12.0,
        charge_efficiency=0.95,
        discharge_efficiency=0.95,
        internal_resistance_ohm=0.01,
    ),
    solar=SolarSpec(peak_w=1200.0, sunrise_h=6.0, sunset_h=18.0, cloudiness=0.3, seed=7),
    zones=(
        ZoneSpec(
            zone_id="Zone1",
            name="Clinic & emergency lights",
            priority="critical",
            rated_w=150.0,
            profile="clinic",
        ),
        ZoneSpec(
            zone_id="Zone2",
            name="Street lights",
            priority="semi_critical",
            rated_w=200.0,
            profile="night",
            schedule="night",
        ),
        ZoneSpec(
            zone_id="Zone3",
            name="Homes",
            priority="non_critical",
            rated_w=400.0,
            profile="residential",
        ),
        ZoneSpec(
            zone_id="Zone4",
            name="Water pump",
            priority="deferrable",
            rated_w=300.0,
            profile="day",
            schedule="day",
        ),
    ),
)
