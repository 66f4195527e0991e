"""The report: every part of the founding report run from one config, written as a static HTML page."""
