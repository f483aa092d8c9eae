"""Alerts: the record (model), the rules, the options, the manager, the channels and the
gateway channels the options turn on. Set up per site and exposed as actions by services/."""
