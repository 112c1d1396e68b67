"""
The real Airflow stack on loopback (``tests.stack.airflow_stack``): what ``make airflow`` runs and what the
end-to-end tests start, imported as ``from tests.stack.airflow_stack import AirflowStack``.
"""
