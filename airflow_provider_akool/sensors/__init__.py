"""Sensors that wait for Akool results."""
