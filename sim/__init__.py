"""The simulated site: a loopback RTDB-compatible server and an ESP32 fleet on a physical model."""
