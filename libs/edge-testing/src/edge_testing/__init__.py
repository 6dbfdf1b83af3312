"""Shared test fixtures: real servers on free ports, waited for by readiness checks."""
