"""Settings of the emulator: credentials, job timings, retention and limits."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_KEY = "emulator-api-key"
DEFAULT_CLIENT_ID = "emulator-client-id"
#: The emulator's price list, in credits per submitted job (Akool publishes none; these are its own).
IMAGE_REAGE_CREDIT = 2
VIDEO_REAGE_CREDIT = 10
BACKGROUND_CHANGE_CREDIT = 4
IMAGE_FACESWAP_CREDIT = 2
VIDEO_FACESWAP_CREDIT = 10
FACESWAP_PRO_CREDIT = 3
#: The balance of a fresh emulator: enough for every test, the demo and the benchmarks many times over.
DEFAULT_CREDIT = 1_000_000


@dataclass
class EmulatorConfig:
    """
    How the emulated Akool account behaves.

    :param api_key: The key accepted in ``x-api-key`` and ``Authorization: Bearer``.
    :param client_id: The ``clientId`` accepted by ``getToken``.
    :param client_secret: The ``clientSecret`` accepted by ``getToken``; ``None`` means the API key, as on
        Akool, where the key is the clientSecret.
    :param queued_seconds: How long a new job stays queued (status 1).
    :param processing_seconds: How long an image reage or image face swap job (Face Swap Pro included)
        stays processing (status 2).
    :param video_processing_seconds: How long a video reage or video face swap job stays processing.
    :param bg_processing_seconds: How long a background change job stays processing.
    :param result_ttl_seconds: How long a finished result can be downloaded (Akool keeps results 7 days).
    :param token_ttl_seconds: Lifetime of a ``getToken`` token; ``None`` means it never expires.
    :param max_listbyids: Most ``_ids`` accepted by one ``listbyids`` request.
    :param video_result_bytes: Size of a video reage result download.
    :param public_base_url: Base of the result and sample URLs in replies; ``None`` derives it from each
        request (for example ``http://127.0.0.1:8765``).
    :param credit: The account's credit balance at start (and after a reset). Each submission is charged
        its price when accepted; one the balance cannot pay is refused with 1006.
    :param image_reage_credit: The price of an image reage job.
    :param video_reage_credit: The price of a video reage job.
    :param background_change_credit: The price of a background change job.
    :param image_faceswap_credit: The price of an image face swap job (``specifyimage``).
    :param video_faceswap_credit: The price of a video face swap job (``specifyvideo``).
    :param faceswap_pro_credit: The price of a Face Swap Pro job (v4 ``faceswapByImage``).
    :param fetch_inputs: Download input URLs served on loopback (a local S3 server, a test's HTTP server),
        as Akool downloads inputs: a failed download fails the job. Other hosts are never contacted.
    """

    api_key: str = DEFAULT_API_KEY
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str | None = None
    queued_seconds: float = 0.2
    processing_seconds: float = 0.6
    video_processing_seconds: float = 1.5
    bg_processing_seconds: float = 0.6
    result_ttl_seconds: float = 7 * 24 * 3600
    token_ttl_seconds: float | None = None
    max_listbyids: int = 100
    video_result_bytes: int = 256 * 1024
    public_base_url: str | None = None
    credit: float = DEFAULT_CREDIT
    image_reage_credit: float = IMAGE_REAGE_CREDIT
    video_reage_credit: float = VIDEO_REAGE_CREDIT
    background_change_credit: float = BACKGROUND_CHANGE_CREDIT
    image_faceswap_credit: float = IMAGE_FACESWAP_CREDIT
    video_faceswap_credit: float = VIDEO_FACESWAP_CREDIT
    faceswap_pro_credit: float = FACESWAP_PRO_CREDIT
    fetch_inputs: bool = True

    def __post_init__(self) -> None:
        # Resolved here rather than as a default so that changing api_key alone keeps the Akool rule
        # "the key equals the clientSecret".
        if self.client_secret is None:
            self.client_secret = self.api_key
        if self.public_base_url is not None:
            self.public_base_url = self.public_base_url.rstrip("/")
        for name in ("queued_seconds", "processing_seconds", "video_processing_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.bg_processing_seconds < 0 or self.result_ttl_seconds < 0:
            raise ValueError("bg_processing_seconds and result_ttl_seconds must not be negative")
        if self.max_listbyids < 1:
            raise ValueError("max_listbyids must be at least 1")
        if self.video_result_bytes < 0:
            raise ValueError("video_result_bytes must not be negative")
        for name in (
            "credit",
            "image_reage_credit",
            "video_reage_credit",
            "background_change_credit",
            "image_faceswap_credit",
            "video_faceswap_credit",
            "faceswap_pro_credit",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a number of at least 0")

    def price(self, kind: str) -> float:
        """The credits a job of ``kind`` (``imgreage``, ``vidreage``, ``bg_replace``, ...) costs."""
        prices = {
            "imgreage": self.image_reage_credit,
            "vidreage": self.video_reage_credit,
            "bg_replace": self.background_change_credit,
            "specifyimage": self.image_faceswap_credit,
            "specifyvideo": self.video_faceswap_credit,
            "faceswapByImage": self.faceswap_pro_credit,
        }
        return prices[kind]

    @property
    def secret(self) -> str:
        """The clientSecret, resolved (never ``None`` after construction)."""
        return self.client_secret if self.client_secret is not None else self.api_key
