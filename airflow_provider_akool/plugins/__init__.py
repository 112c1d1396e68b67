"""Airflow plugins the provider ships (registered through the ``airflow.plugins`` entry point)."""
