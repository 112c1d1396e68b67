"""The operator that checks the Akool credit balance before a batch spends it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_akool import masking, validation
from airflow_provider_akool.exceptions import AkoolCreditTooLowError, AkoolValidationError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_akool.protocol import Credit


class AkoolCheckCreditOperator(masking.LearnsSecretWhenRendered, BaseOperator):
    """
    Read the account's credit balance once and fail, without retrying, when it is below ``minimum_credit``.

    Put it upstream of a batch, so a batch that cannot be paid for stops before its first job rather than
    half way through, with jobs failing one by one on Akool's 1006 "quota not enough". Returns the balance
    (an int, or a float if Akool reports one). A balance equal to ``minimum_credit`` passes.

    Below the threshold it raises :class:`~airflow_provider_akool.exceptions.AkoolCreditTooLowError`, an
    ``AirflowFailException``: the task fails at once without using its retries, naming the balance and the
    threshold. A failed read of the balance (a lost connection, a 5xx) keeps the task's retries.

    :param minimum_credit: the least balance the batch needs, a number >= 0 (a templated ``"50"`` is fine).
        Akool does not publish its prices per call: take it from your account's history.
    :param akool_conn_id: the ``akool`` connection.
    """

    template_fields: Sequence[str] = ("minimum_credit", "akool_conn_id")

    def __init__(
        self,
        *,
        minimum_credit: float | str,
        akool_conn_id: str = "akool_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.minimum_credit = minimum_credit
        self.akool_conn_id = akool_conn_id

    def execute(self, context: Context) -> Credit:
        """Check ``minimum_credit``, read the balance, compare, and return the balance."""
        # Imported here: the HTTP clients are needed to run a task, not to parse a DAG file.
        from airflow_provider_akool.hooks.akool import AkoolHook

        if not (isinstance(self.akool_conn_id, str) and self.akool_conn_id.strip()):
            raise AkoolValidationError(
                f"akool_conn_id must be the id of an akool connection; got {self.akool_conn_id!r}"
            )
        hook = AkoolHook(self.akool_conn_id)
        # The masker learns the API key before an error may quote a field rendered from it.
        masking.make_secret_known(hook)
        try:
            minimum = validation.non_negative_number("minimum_credit", self.minimum_credit)
        except AkoolValidationError as error:
            raise masking.redacted_error(error) from None
        credit = hook.get_credit()
        if credit < minimum:
            raise AkoolCreditTooLowError(
                f"the Akool credit balance is {credit}, below minimum_credit {minimum}: top up the account "
                "(or lower minimum_credit) before running the batch; nothing was submitted",
                credit=credit,
                minimum_credit=minimum,
                endpoint="quota_info",
            )
        self.log.info("Akool credit balance: %s (minimum_credit %s)", credit, minimum)
        return credit


__all__ = ["AkoolCheckCreditOperator"]
