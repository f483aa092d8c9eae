"""The day plan: manager.py (PlanManager, through a narrow PlanSource), history.py (the measured
slots persistence reads), inputs.py (the site as optimizer.controller sees it, daily jobs)."""
