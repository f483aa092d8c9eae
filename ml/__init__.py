"""Pure learning code for the microgrid: features, demand forecast, sustain time, anomalies.

No Home Assistant import and only relative imports (this package also loads as
custom_components.microgrid.ml). Importing it is cheap: scikit-learn is imported only inside
the functions that train or predict with it (`DemandForecaster.fit/predict`,
`AnomalyDetector.fit/score`, `store.dumps/loads/train_all`), so run those in an executor.

- history.History / resample: the measured history as arrays (epoch seconds, NaN = missing)
- demand.DemandForecaster: site and per-zone demand, regression or seasonal persistence
- sustain.sustain_time / fit_sustain_correction: hours to the emergency band and to empty
- anomaly.AnomalyDetector: typed anomalies with scores
- store.train_all / dumps / loads: one training run and its versioned byte format
- series, buffer, pipeline: the integration's history by role, its live buffer, its runs
"""
