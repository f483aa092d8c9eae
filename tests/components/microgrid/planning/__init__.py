"""Tests of the day plan inside Home Assistant (planning/)."""
