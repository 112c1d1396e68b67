"""
OpenLineage for the submitting operators: input media as input datasets, the result as the output
dataset, and the Akool job as a run facet.

Optional, as in the dbt Cloud and Databricks providers: only the OpenLineage provider's listener calls the
``get_openlineage_facets_on_*`` methods, and only they import it (``pip install
'airflow-provider-akool[openlineage]'``), so the operators import and run without it.

A dataset is named from a URL without its query string, fragment and user part: a signed URL's signature
and an ``s3://conn_id@bucket/key`` connection id never reach a lineage event.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

#: The key of :class:`AkoolJobRunFacet <_facet_class>` in the run's facets.
RUN_FACET_NAME = "akool"
RUN_FACET_SCHEMA_URL = "https://github.com/airflow-provider-akool/airflow-provider-akool/blob/main/docs/lineage.md#the-akool-run-facet"


def dataset_name(value: Any) -> tuple[str, str] | None:
    """
    Return the OpenLineage ``(namespace, name)`` of a media URL, object-storage URI or local path.

    ``https://host:port/path`` -> (``https://host:port``, ``/path``); ``s3://conn@bucket/key`` ->
    (``s3://bucket``, ``key``); ``file:///x`` and ``/x`` -> (``file``, ``/x``). The query string, the
    fragment and any user or password are dropped. None for what is not a location (a bad value is the
    operator's to report, not lineage's).
    """
    if isinstance(value, os.PathLike):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if not text:
        return None
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter: a local path
        return "file", os.path.abspath(text.split("?", 1)[0])
    if scheme == "file":
        return (f"file://{host}" if host else "file"), parts.path
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if scheme in ("http", "https"):
        return f"{scheme}://{host}{f':{port}' if port else ''}", parts.path or "/"
    return f"{scheme}://{host}", parts.path.lstrip("/") or "/"


def input_media(operator: Any) -> list[tuple[str, str]]:
    """
    The datasets of the operator's (rendered) media inputs, each once, in the order its kind lists them.

    The kind (:attr:`JobKind.inputs <airflow_provider_akool.kinds.base.JobKind.inputs>`) says which
    parameters are media; an object without a kind is read by the inputs of every registered kind, the
    parameters first and the lists of faces (``target_image`` paths) after.
    """
    from airflow_provider_akool.kinds.base import media_inputs

    kind = getattr(operator, "kind", None)
    if kind is not None:
        inputs = kind.inputs
    else:
        inputs = tuple(sorted(media_inputs().values(), key=lambda media_input: media_input.key is not None))
    values = [
        url for media_input in inputs for url in media_input.urls(getattr(operator, media_input.name, None))
    ]
    names = (dataset_name(value) for value in values)
    return list(dict.fromkeys(name for name in names if name is not None))


def result_location(job: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """
    The dataset of a job's result: the kept file (``output_path``), else the result URL; None for a failed
    job, which writes nothing. A job not finished yet (``wait_for_completion=False``) reports the URL its
    result will have.
    """
    if not job or job.get("status") == "failed":
        return None
    return dataset_name(job.get("output_path")) or dataset_name(job.get("url"))


@functools.cache
def _facet_class() -> Callable[..., RunFacet]:
    # Defined on first use: attrs and the OpenLineage client come with the optional provider only.
    import attrs
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attrs.define
    class AkoolJobRunFacet(RunFacet):
        """The Akool job of a task: its ``_id``, reage ``job_id``, last known status and kind."""

        id: str
        job_id: str | None = None
        status: str | None = None
        job_kind: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return RUN_FACET_SCHEMA_URL

    return AkoolJobRunFacet


class AkoolLineageMixin:
    """
    Operator mixin: the ``get_openlineage_facets_on_*`` methods the OpenLineage listener calls.

    The operator calls :meth:`note_lineage_job` with each state of its job it learns (submitted, polled,
    returned); the facets report the last one.
    """

    #: The job as the task's return value has it (``id``, ``job_id``, ``status``, ``url``, ``output_path``).
    lineage_job: dict[str, Any] | None = None

    def note_lineage_job(self, job: Mapping[str, Any]) -> None:
        """Keep the latest known state of the task's Akool job for the lineage events."""
        self.lineage_job = dict(job)

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Return the input media, known once the fields are rendered; the job does not exist yet."""
        return self._lineage(with_job=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Return the input media, the result, and the Akool job with its status."""
        return self._lineage(with_job=True)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """Return the input media, and the Akool job as last seen if there was one."""
        return self._lineage(with_job=True)

    def _lineage(self, *, with_job: bool) -> OperatorLineage:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs: list[Dataset] = [Dataset(namespace=ns, name=name) for ns, name in input_media(self)]
        job = self.lineage_job if with_job else None
        outputs: list[Dataset] = []
        run_facets: dict[str, RunFacet] = {}
        location = result_location(job)
        if location is not None:
            outputs.append(Dataset(namespace=location[0], name=location[1]))
        if job and isinstance(job.get("id"), str):
            run_facets[RUN_FACET_NAME] = _facet_class()(
                id=job["id"],
                job_id=job.get("job_id"),
                status=job.get("status"),
                job_kind=getattr(getattr(self, "kind", None), "name", None),
            )
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


__all__ = ["AkoolLineageMixin", "dataset_name"]
