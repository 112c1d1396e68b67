"""A small client for the emulator's control API (``/_emulator/``)."""

from __future__ import annotations

from typing import Any

import requests


class EmulatorClient:
    """
    Inspect and steer a running emulator. Every call raises ``requests.HTTPError`` if refused.

    :param base_url: The emulator's base URL, e.g. ``http://127.0.0.1:8765``.
    :param timeout: Seconds per call.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        # One short-lived session per call: nothing to close, nothing leaked between tests.
        response = requests.request(
            method, f"{self.base_url}/_emulator/{path}", json=json, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise requests.HTTPError(
                f"{response.status_code} from the emulator control API: {response.text}", response=response
            )
        return response.json()

    def ledger(self) -> dict[str, Any]:
        """Counts, listbyids id lists, requests and jobs (see ``docs/emulator.md``)."""
        ledger: dict[str, Any] = self._call("GET", "ledger")
        return ledger

    def counts(self) -> dict[str, int]:
        """Requests per endpoint: getToken, imgreage, vidreage, listbyids, job_del, bg_replace, ..."""
        counts: dict[str, int] = self.ledger()["counts"]
        return counts

    def reset(self) -> None:
        """Clear jobs, results, ledger, faults and account flags (tokens and clock are kept)."""
        self._call("POST", "reset")

    def add_fault(
        self, kind: str, count: int | None = 1, path: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """
        Queue a fault.

        :param kind: ``http_500``, ``drop``, ``slow``, ``code_1005``, ``http_429``, ``not_json``,
            ``missing_fields``, ``expire_tokens``, ``banned``, ``quota``, ``code`` or ``oversized``.
        :param count: Matching requests affected; ``None`` until cleared.
        :param path: Substring of the request path to match, e.g. ``"listbyids"``.
        :param extra: Kind options: ``status``, ``seconds``, ``retry_after``, ``mode``, ``after``,
            ``code``, ``size``, ``length``.
        :return: The control API's reply.
        """
        reply: dict[str, Any] = self._call(
            "POST", "faults", {"kind": kind, "count": count, "path": path, **extra}
        )
        return reply

    def faults(self) -> list[dict[str, Any]]:
        """The queued faults."""
        faults: list[dict[str, Any]] = self._call("GET", "faults")["faults"]
        return faults

    def clear_faults(self) -> None:
        """Remove every queued fault."""
        self._call("DELETE", "faults")

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far."""
        self.add_fault("expire_tokens")

    def now(self) -> float:
        """The emulator clock (epoch seconds)."""
        now: float = self._call("GET", "clock")["now"]
        return now

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new emulator time."""
        now: float = self._call("POST", "clock", {"advance": seconds})["now"]
        return now

    def freeze_clock(self, frozen: bool = True) -> float:
        """Stop the emulator's wall clock (only ``advance_clock`` moves it), or let it run again."""
        now: float = self._call("POST", "clock", {"freeze": frozen})["now"]
        return now

    def set_job_status(self, _id: str, status: int) -> None:
        """Pin the status (1 to 4) of the job with this ``_id``."""
        self._call("POST", f"jobs/{_id}/status", {"status": status})

    def delete_job(self, _id: str) -> None:
        """Forget the job with this ``_id`` and its result, as if it was deleted on Akool."""
        self._call("DELETE", f"jobs/{_id}")

    def poison_entry(self, _id: str, form: str | None, stray: bool = False) -> dict[str, Any]:
        """
        Poison the ``listbyids`` entry of a reage job, or heal it (``form=None``).

        :param form: ``status`` (faceswap_status 7), ``id`` (no ``_id``), ``object`` (a string, not an
            object), ``types`` (``url`` a number, ``job_id`` a list), or None.
        :param stray: put the poisoned entry into every ``listbyids`` reply, asked for or not.
        """
        reply: dict[str, Any] = self._call("POST", f"jobs/{_id}/poison", {"form": form, "stray": stray})
        return reply

    def set_account(
        self, banned: bool | None = None, quota: bool | None = None, credit: float | None = None
    ) -> dict[str, Any]:
        """Set the account flags and/or the credit balance (``None``: unchanged); returns all three."""
        account: dict[str, Any] = self._call(
            "POST", "account", {"banned": banned, "quota": quota, "credit": credit}
        )
        return account

    def account(self) -> dict[str, Any]:
        """The account flags and the credit balance: ``{"banned", "quota", "credit"}``."""
        account: dict[str, Any] = self._call("GET", "account")
        return account
