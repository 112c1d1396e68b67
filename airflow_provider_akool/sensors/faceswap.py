"""The sensor that waits for face swap results (image, video and Face Swap Pro)."""

from __future__ import annotations

from airflow_provider_akool.kinds.faceswap import FACESWAP
from airflow_provider_akool.sensors.base import AkoolResultIdsSensorBase


class AkoolFaceSwapSensor(AkoolResultIdsSensorBase):
    """
    Wait for one or many face swap results (``_id`` values), in poke, reschedule or deferrable mode.

    Any face swap job (image, video, Face Swap Pro) is polled alike, through ``listbyids``, in the rounds of
    reage's waits. Returns one ``{"id", "job_id", "status", "url", "output_path"}`` per id, in the order
    given (``output_path`` is None: a sensor keeps no file). Any failed job (status 4) fails the task with
    its id, job id and reason; an id Akool does not know fails it after ``not_found_grace``.

    :param result_ids: one ``_id``, a list, or an XCom of either; the return dicts of the face swap
        operators are taken too (their ``id``), so ``result_ids=swap.output`` works, mapped or not.
    :param akool_conn_id: the ``akool`` connection.
    :param not_found_grace: seconds an id may stay unknown to Akool before the task fails (default 60).
    :param deferrable: wait in the triggerer (the generic ``AkoolKindTrigger``).
    :param poke_interval: seconds between checks (default 10); ``timeout``, ``mode``, ``soft_fail`` and the
        rest are those of any Airflow sensor.
    """

    kind = FACESWAP
