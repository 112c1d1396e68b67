"""
The first Akool triggers of a triggerer do not block its event loop with imports.

On the distributed stack each triggerer warned once, as it picked up its first Akool triggers, that its loop
was blocked for 0.23-0.41 s (Airflow's limit is 0.2 s): the first poll imported the hook's module (requests,
urllib3, tenacity: ~0.3 s) on the loop. This runs triggers in a fresh interpreter, where nothing has imported
the hook yet, and records which thread imports it. ``tests/e2e/distributed/`` reads the real triggerers'
output for the warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.support.connections import ConnectionFactory

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib.abc, json, sys, threading, time

    HOOK = "airflow_provider_akool.hooks.akool"
    seen = {}

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == HOOK and "thread" not in seen:
                seen["thread"] = threading.current_thread().name
                seen["on_loop_thread"] = threading.current_thread() is threading.main_thread()
            return None

    sys.meta_path.insert(0, Watch())
    from airflow.triggers.base import BaseTrigger  # the triggerer has Airflow loaded already
    from airflow_provider_akool.triggers.reage import AkoolReageTrigger

    loaded_with_trigger_module = HOOK in sys.modules

    async def main():
        lag, stop = 0.0, False

        async def watchdog():
            nonlocal lag
            while not stop:
                started = time.monotonic()
                await asyncio.sleep(0.01)
                lag = max(lag, time.monotonic() - started - 0.01)

        watching = asyncio.create_task(watchdog())
        await asyncio.sleep(0.05)
        # As a triggerer picking up a batch: 25 waits start on one loop at once.
        triggers = [
            AkoolReageTrigger(
                result_ids=[f"{n:024x}"], poll_interval=0.2, not_found_grace=0.3, deadline=time.time() + 30
            )
            for n in range(25)
        ]
        events = await asyncio.gather(*(t.run().__anext__() for t in triggers))
        stop = True
        await watching
        return [event.payload["status"] for event in events], lag

    statuses, lag = asyncio.run(main())
    print(json.dumps({**seen, "loaded_with_trigger_module": loaded_with_trigger_module,
                      "statuses": sorted(set(statuses)), "count": len(statuses), "lag": lag}))
    """
)


def test_the_first_triggers_import_the_hook_off_the_event_loop(akool_connection: ConnectionFactory) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    # The waits really ran: each polled the emulator until its unknown id passed the grace.
    assert (facts["statuses"], facts["count"]) == (["not_found"], 25), facts
    # Parsing a DAG or loading the trigger class must not pay for the HTTP clients either.
    assert facts["loaded_with_trigger_module"] is False, facts
    assert facts["on_loop_thread"] is False, (
        f"the hook's module was imported on the event loop's thread ({facts['thread']}); "
        f"the loop was blocked for up to {facts['lag']:.2f} s"
    )
