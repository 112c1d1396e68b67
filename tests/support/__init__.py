"""
What many test modules share, one module per thing it provides; fixtures stay in ``conftest.py``.

- :mod:`.connections`: the emulator's credentials and the connection ids the fixtures define.
- :mod:`.dag_runs`: running a DAG with ``dag.test()`` and reading what happened (states, XComs, failures).
- :mod:`.task_context`: stand-ins for what ``execute()`` gets outside a DAG run (task instance, state store).
- :mod:`.samples`: the emulator's sample media.
- :mod:`.akool_replies`: replies Akool's documentation shows, to the letter.
- :mod:`.example_dags`: the example DAGs of ``dags/``, parsed.
- :mod:`.mounts`: folders that fail as real disks do; :mod:`.s3_server`: a real S3 API on 127.0.0.1.
"""
