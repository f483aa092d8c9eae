"""The demo stack: a simulated site and a real Home Assistant onboarded with the microgrid entry."""
