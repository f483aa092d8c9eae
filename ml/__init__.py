"""Pure learning code for the microgrid: features, demand forecast, sustain time, anomalies."""
